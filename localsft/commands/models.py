"""`localsft models list|add`: the models store."""

from __future__ import annotations

from localsft.models.store import add_model, list_models


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _params(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def run_list(args) -> int:
    from localsft.models.store import install_default_model

    install_default_model()
    rows = [("NAME", "ARCH", "PARAMS", "PRECISION", "SIZE", "SOURCE")]
    for m in list_models():
        rows.append((m.name, m.architecture, _params(m.parameters), m.precision, _size(m.size_bytes), m.source))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
    return 0


def run_add(args) -> int:
    info = add_model(args.source, name=args.name)
    print(f"Added {info.name}: {info.architecture}, {_params(info.parameters)} parameters, "
          f"{info.precision}, {_size(info.size_bytes)} -> {info.path}")
    return 0


def register(parser) -> None:
    verbs = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    verbs.add_parser("list", help="show the models in the store").set_defaults(func=run_list)
    add = verbs.add_parser("add", help="add a model: Hugging Face repo id, model folder or .gguf file")
    add.add_argument("source", help="user/repo, a folder with config.json + safetensors, or a .gguf file")
    add.add_argument("--name", help="name in the store (default: from the source)")
    add.set_defaults(func=run_add)
