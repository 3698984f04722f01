"""The studio: a thin Gradio layer over the localsft library (`localsft ui` starts it).

    app.py          builds the page (one tab per module below) and launches it
    common.py       plain-sentence errors, caches, small shared helpers
    data_tab.py     upload / paste / pick examples, column mapping, report, preview
    train_tab.py    model and recipe, plan, start / stop / resume, live loss chart
    compare_tab.py  side-by-side chat, held-out evaluation, blind A/B votes
    export_tab.py   export formats with download links, push to the Hub
    runs_tab.py     every run with status and best validation loss; open or delete
    browser_input.py  what handlers accept from a browser: names and numbers, never paths
    security.py     the gate in front of Gradio: routes, Host names, login and its back-off
    served_files.py uploads/ and downloads/ (the only folder served), clean-up of old files
    isolated_read.py  reads an uploaded file in a memory- and time-limited child first

No training or data logic lives here: handlers call localsft and render what it returns.
"""
