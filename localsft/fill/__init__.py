"""Fill a spreadsheet: answer every row of a file with a run's tuned model (or a base model).

    from localsft.fill import fill_file
    fill_file("my-run", "new_inputs.xlsx", on_progress=print)   # writes new_inputs.filled.xlsx

Inputs are read with the data doctor's readers (`inputs.py`), answered in batches on one
copy of the weights (`localsft.inference.batch`), and written as they finish to a file of
the same kind (`output.py`), so a stop or a crash loses nothing and `resume` continues at
the first missing row (`runner.py`).
"""

from localsft.fill.runner import FillOptions, FillProgress, fill_file

__all__ = ["FillOptions", "FillProgress", "fill_file"]
