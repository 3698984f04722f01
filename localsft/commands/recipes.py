"""`localsft recipes`: the shipped training recipes, one line each."""

from __future__ import annotations


def run(args) -> int:
    from localsft.errors import UserError
    from localsft.train.recipes import list_recipes, recipes_dir

    recipes = list_recipes()
    if not recipes:
        raise UserError(f"No recipes found in {recipes_dir()}: this installation of localsft is incomplete.")
    width = max(len(r.name) for r in recipes)
    for r in recipes:
        print(f"{r.name:<{width}}  {r.description}  [{r.time_hint}]")
    print("\nUse one with: localsft train --recipe NAME [--data FILE]")
    return 0


def register(parser) -> None:
    parser.set_defaults(func=run)
