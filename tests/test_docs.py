"""The documentation's promises: every relative link resolves inside the repository, and no text of the README
stands a second time in docs/ (each text lives in one place)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", REPO / "config" / "README.md", *(REPO / "docs").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)  # code blocks hold no links
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repository(doc: Path) -> None:
    for target in _relative_links(doc):
        resolved = (doc.parent / target.split("#", 1)[0]).resolve()
        assert resolved.is_relative_to(REPO), f"{doc.name}: {target} points outside the repository"
        assert resolved.exists(), f"{doc.name}: {target} does not exist"


def _paragraphs(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    blocks = (" ".join(b.split()) for b in re.split(r"\n\s*\n", text))
    # long prose only: headings, short lines and table rows may repeat by design
    return {b for b in blocks if len(b) >= 160 and not b.startswith(("|", "#", "```"))}


def test_no_readme_paragraph_stands_again_in_docs() -> None:
    readme = _paragraphs(REPO / "README.md")
    for doc in (REPO / "docs").glob("*.md"):
        repeated = readme & _paragraphs(doc)
        assert not repeated, f"{doc.name} repeats README text: {next(iter(repeated))[:120]}..."


def test_readme_is_a_front_door() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 330
    commands = re.findall(r"^make (\w+)", readme, flags=re.M)
    assert commands[:2] == ["demo", "test"]


# -- one description of each configuration key, and of the dependencies -------------------------------------
def _schema_keys() -> dict[str, dict]:
    import yaml

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))

    def leaves(node: dict, prefix: str = "") -> dict[str, dict]:
        out = {}
        for key, value in node.get("properties", {}).items():
            if value.get("type") == "object" and "properties" in value:
                out.update(leaves(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    return leaves(schema)


def test_every_configuration_key_is_the_schemas_set_in_the_example_and_documented() -> None:
    """The schema describes each key once; config/config.yaml sets every one to its default (but the older forms
    the schema marks deprecated), and the key table of docs/configuration.md names every one (and no other)."""
    import yaml

    keys = _schema_keys()

    def flat(node: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in node.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    example = flat(yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8")))
    assert set(example) == {key for key, node in keys.items() if not node.get("deprecated")}
    assert {k: v for k, v in example.items() if v != keys[k].get("default")}.keys() == {"start", "end"}
    documented = set()
    for row in (REPO / "docs" / "configuration.md").read_text(encoding="utf-8").splitlines():
        if not row.startswith("| `"):
            continue
        names = re.findall(r"`([^`]+)`", row.split("|")[1])
        section = names[0].rsplit(".", 1)[0] + "." if "." in names[0] else ""
        documented |= {n if "." in n else section + n for n in names}
    wildcard = {d[:-1] for d in documented if d.endswith(".*")}
    documented = {d for d in documented if not d.endswith(".*") and d not in ("`",)}
    in_table = {k for k in keys if k in documented or any(k.startswith(w) for w in wildcard)}
    assert in_table == set(keys), f"undocumented keys: {sorted(set(keys) - in_table)}"
    assert documented <= set(keys) | {"channels", "geolocation"}, sorted(documented - set(keys))


def _requirement(text: str) -> tuple[str, str]:
    """``name``, ``specifier`` of a requirement, with conda's names for the same packages made PyPI's."""
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", text)
    assert match is not None, text
    name = {"matplotlib-base": "matplotlib", "dask-core": "dask"}.get(match[1].lower(), match[1].lower())
    return name, match[3].replace(" ", "")


@pytest.mark.parametrize("conda_file", ["environment.yml", "workflow/envs/amsr2flow.yaml"])
def test_the_conda_files_hold_the_dependencies_of_pyproject(conda_file: str) -> None:
    import yaml

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = dict(_requirement(r) for r in pyproject["project"]["dependencies"])
    conda = yaml.safe_load((REPO / conda_file).read_text(encoding="utf-8"))["dependencies"]
    pip = next(d["pip"] for d in conda if isinstance(d, dict))
    listed = [d for d in conda if isinstance(d, str) and d not in ("pip",) and not d.startswith("python")]
    listed += [p for p in pip if not p.startswith("-e")]
    if conda_file.startswith("workflow/"):
        # a rule's script runs with the Snakemake that runs the workflow (it puts itself on the path)
        wanted.pop("snakemake")
    assert dict(_requirement(d) for d in listed) == wanted


# -- a key said in several places is said alike --------------------------------------------------------------
#: Keys whose meaning the example's comment and the reference's row give in the schema's own words (they may add
#: more). A key whose wording drifted apart once, so that one of the places was wrong, is held here.
SAID_ALIKE = ["transfer.attempts", "catalogue.settle_days", "part_size"]


def _example_comments() -> dict[str, str]:
    """Each key of config/config.yaml with its comment, continuation lines included."""
    comments: dict[str, str] = {}
    path: list[str] = []
    last = ""
    for line in (REPO / "config" / "config.yaml").read_text(encoding="utf-8").splitlines():
        key = re.match(r"^(\s*)([A-Za-z_]+):([^#]*)(?:#\s*(.*))?$", line)
        if key:
            path = [*path[: len(key[1]) // 2], key[2]]
            last = ".".join(path)
            comments[last] = key[4] or ""
        elif re.match(r"^\s{20,}#", line) and last:  # a comment continued under the one above
            comments[last] += " " + line.split("#", 1)[1].strip()
    return comments


def _words(text: str) -> str:
    return " ".join(text.replace("`", "").split())


@pytest.mark.parametrize("key", SAID_ALIKE)
def test_a_key_explained_in_three_places_says_the_same_there(key: str) -> None:
    said = _words(_schema_keys()[key]["description"])
    rows = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8").splitlines()
    reference = [row for row in rows if row.startswith(f"| `{key}`")]
    assert said in _words(_example_comments()[key]), f"config/config.yaml says of {key}: {_example_comments()[key]}"
    assert reference and said in _words(reference[0]), f"docs/configuration.md says of {key}: {reference}"


def test_no_text_describes_the_granule_stage_as_a_job_per_granule() -> None:
    """Transfers run as one job per day (docs/design.md); the example config still said "one job per granule"."""
    texts = [REPO / "config" / "config.yaml", REPO / "config" / "README.md", REPO / "docs" / "configuration.md"]
    texts += [REPO / "workflow" / "schemas" / "config.schema.yaml", *(REPO / "profiles").rglob("*.yaml")]
    texts += [REPO / "workflow" / "profiles" / "default" / "config.yaml"]
    for path in texts:
        said = _words(path.read_text(encoding="utf-8")).lower()
        assert "job per granule" not in said, path
