"""The studio page: five tabs over the library, and `launch` with the privacy settings.

Per-session values live in gr.State (the examples file, the followed run); the only
shared state is the training job, deliberately one per machine (localsft.runs.jobs).
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported

import gradio as gr  # noqa: E402

from localsft import paths  # noqa: E402
from localsft_ui import compare_tab, data_tab, export_tab, runs_tab, train_tab, use_tab  # noqa: E402

TITLE = "localsft studio"


def build() -> gr.Blocks:
    """The whole app (not launched)."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nFine-tune a small language model on your own examples, on this machine.")
        data_file = gr.State(None)
        with gr.Tabs() as tabs:
            data = data_tab.build(data_file)
            train = train_tab.build(data_file)
            compare = compare_tab.build()
            export = export_tab.build()
            runs = runs_tab.build()
            use = use_tab.build()

        # Re-attach: a new page (reload, second tab) shows the running job straight away.
        demo.load(train.attach, train.run_dir, train.outputs)
        demo.load(runs.refresh, runs.run, [runs.table, runs.run])
        tabs.change(runs.refresh, runs.run, [runs.table, runs.run])
        tabs.change(compare.refresh, compare.run, compare.run)
        tabs.change(export.refresh, export.run, export.run)
        tabs.change(use.refresh, [use.file, use.target], [use.file, use.target])
        demo.load(use.refresh, [use.file, use.target], [use.file, use.target])
        demo.load(use.poll, None, [use.status, use.download])
        runs.open_compare.click(compare.open, runs.run, [compare.run, tabs])
        runs.open_export.click(export.open, runs.run, [export.run, tabs])
        data.to_train.click(lambda: gr.Tabs(selected="train"), None, tabs)
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
           share: bool = False, api_key: str | None = None) -> gr.Blocks:
    """Start serving the app and return at once (`demo.block_thread()` waits; `demo.close()` stops).

    localsft.commands.ui checks host, login and share before calling this.
    """
    from localsft.models.default import install_default_model

    install_default_model()  # so the first page already lists the default model
    demo = build()
    demo.queue(default_concurrency_limit=4)
    demo.launch(server_name=host, server_port=port, auth=auth, share=share, inbrowser=False,
                allowed_paths=[str(paths.home())], prevent_thread_lock=True, quiet=True,
                footer_links=[], theme=gr.themes.Soft())
    api_key = api_key or os.environ.get("LOCALSFT_API_KEY")
    if api_key or not share:  # a share tunnel arrives from loopback: the API then needs a key
        from localsft.serve import mount_api  # the OpenAI API under /v1 (loopback only without a key)

        mount_api(demo.app, api_key)
    return demo
