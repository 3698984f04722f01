"""The studio page: five tabs over the library, and `launch` with the privacy settings.

Per-session values live in gr.State (the examples file, the followed run); the only
shared state is the training job, deliberately one per machine (localsft.runs.jobs).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported

import gradio as gr  # noqa: E402

from localsft import paths  # noqa: E402
from localsft_ui import compare_tab, data_tab, export_tab, feedback, runs_tab, train_tab, use_tab  # noqa: E402

TITLE = "localsft studio"


def build() -> gr.Blocks:
    """The whole app (not launched)."""
    # Gradio's own copies of uploads and downloads (in the home's cache/) go after a day.
    with gr.Blocks(title=TITLE, delete_cache=(3600, 86400)) as demo:
        gr.Markdown(f"# {TITLE}\nFine-tune a small language model on your own examples, on this machine.")
        data_file = gr.State(None)
        with gr.Tabs() as tabs:
            data = data_tab.build(data_file)
            train = train_tab.build(data_file, data.style)
            compare = compare_tab.build()
            export = export_tab.build()
            runs = runs_tab.build()
            use = use_tab.build()

        # Re-attach: a new page (reload, second tab) shows the running job straight away.
        demo.load(train.attach, [train.run_dir, data_file], train.outputs)
        demo.load(runs.refresh, runs.run, [runs.table, runs.run])
        tabs.change(runs.refresh, runs.run, [runs.table, runs.run])
        tabs.change(compare.refresh, compare.run, compare.run).then(
            feedback.refresh, compare.feedback_in, compare.feedback_out)
        demo.load(feedback.refresh, compare.feedback_in, compare.feedback_out)
        tabs.change(export.refresh, export.run, export.shown)
        tabs.change(use.refresh, [use.file, use.target], [use.file, use.target])
        demo.load(use.refresh, [use.file, use.target], [use.file, use.target])
        demo.load(use.poll, None, [use.status, use.download])
        runs.open_compare.click(compare.open, runs.run, [compare.run, tabs])
        runs.open_export.click(export.open, runs.run, [export.run, tabs])
        data.to_train.click(lambda: gr.Tabs(selected="train"), None, tabs)
        # the Data tab's instructions are the run's system prompt (an advanced setting of the Train tab)
        data.instructions.change(lambda text: text, data.instructions, train.settings["system_prompt"],
                                 show_progress="hidden")
        train.to_compare.click(compare.open_run_dir, train.run_dir, [compare.run, tabs])
        compare.improve.click(feedback.improve, compare.run, [train.run_dir, train.message, tabs])
    return demo


def launch(**settings) -> gr.Blocks:
    """Start serving the app and return at once (`demo.block_thread()` waits; `demo.close()` stops).

    settings: those of `serve`; localsft.commands.ui checks host, login and share before calling this.
    """
    from localsft.models.store import install_default_model

    install_default_model()  # so the first page already lists the default model
    return serve(build(), **settings)


def serve(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
          share: bool = False, allowed_hosts: tuple[str, ...] = (), max_upload_mb: float = 50,
          api_key: str | None = None) -> gr.Blocks:
    """Serve `demo` behind the studio's gate (ui/security.py): only its own routes, Host names and
    downloads; uploads up to `max_upload_mb`; uploads older than a week that localsft wrote are removed.
    The OpenAI API is mounted under /v1 (loopback only without `api_key` or LOCALSFT_API_KEY)."""
    from localsft_ui import served_files
    from localsft_ui.security import GuardedApp, HostRule

    served_files.remove_old()
    app = GuardedApp(HostRule(host, {h.lower() for h in allowed_hosts}))
    demo.queue(default_concurrency_limit=4)
    # `_app`: Gradio's hook for a prepared app (its reload mode uses it), the one way to put the gate
    # outside Gradio's own layers before the server starts; tests/test_ui_security.py notices if it goes.
    demo.launch(server_name=host, server_port=port, auth=auth, share=share, inbrowser=False,
                allowed_paths=[str(served_files.downloads_dir())], prevent_thread_lock=True, quiet=True,
                footer_links=[], theme=gr.themes.Soft(), run_history=False, ssr_mode=False,
                max_file_size=f"{max_upload_mb}mb", _app=app)
    if demo.share_url:  # the tunnel forwards its own host name
        app.hosts.extra.add(urlsplit(demo.share_url).hostname)
    api_key = api_key or os.environ.get("LOCALSFT_API_KEY")
    if api_key or not share:  # a share tunnel arrives from loopback: the API then needs a key
        from localsft.serve import mount_api

        mount_api(demo.app, api_key)
    return demo
