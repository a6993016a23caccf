"""The paper (paper/): it builds with no undefined reference or citation, is chktex-, spell- and proselint-clean,
uses every figure file, its figures are legible at print size, its generated numbers match the committed results, its
Markdown twin (pandoc) is current, and its arXiv tarball compiles on its own.

The LaTeX checks need latexmk, chktex, aspell and pandoc (``make paper-deps``, which .ci/run calls); without them
those tests skip with that reason. One latexmk build (into a temporary copy, the tree stays clean) is shared.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "paper"
GENERATED = PAPER / "generated"
sys.path.insert(0, str(ROOT / "scripts"))

import build_draft_md  # noqa: E402
import make_paper_numbers as numbers  # noqa: E402

LATEX_TOOLS = ("latexmk", "pdflatex", "bibtex")


def need(*tools: str):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (`make paper-deps` installs the paper's Debian packages; "
                    ".ci/run does so in CI)")


def own_tex_files() -> list[Path]:
    """The LaTeX this project writes: main.tex, the sections and the files make_paper_numbers.py generates
    (not strategy_table.tex, which `adaptive-lora report` writes)."""
    return ([PAPER / "main.tex"] + sorted((PAPER / "sections").glob("*.tex"))
            + [GENERATED / n for n in numbers.OUTPUTS if (GENERATED / n).exists()])


def copy_sources(dst: Path) -> Path:
    shutil.copytree(PAPER, dst, ignore=shutil.ignore_patterns("build", "main.pdf", "draft.md", "*.log"))
    return dst


# --------------------------------------------------------------------------------------------- log checking
UNDEFINED = [
    r"LaTeX Warning: Reference `[^']*' on page \S+ undefined",
    r"Citation `[^']*' on page \S+ undefined",
    r"LaTeX Warning: There were undefined references",
    r"There were undefined citations",
    r"LaTeX Warning: Label\(s\) may have changed",
    r"LaTeX Warning: Label `[^']*' multiply defined",
    r"LaTeX Warning: File `[^']*' not found",
    r"Empty `thebibliography' environment",
]


def log_problems(log: str) -> list[str]:
    """Undefined references and citations, duplicate labels and missing files in a LaTeX .log."""
    flat = log.replace("\n", "")  # TeX wraps log lines at 79 characters
    return [m.group(0) for pat in UNDEFINED for m in re.finditer(pat, flat)]


def test_build_pdf_reruns_pdflatex_when_latexmk_stops_with_a_stale_log(tmp_path):
    """The CI failure: latexmk judged main.aux unchanged (same size, same second) and stopped while the log said
    "Label(s) may have changed". Simulated on a tiny document: after a full build latexmk has nothing to do, so a
    rerun request planted in the log must be answered by build_pdf.sh's own pdflatex pass."""
    need(*LATEX_TOOLS)
    (tmp_path / "main.tex").write_text("\\documentclass{article}\\begin{document}\\section{A}\\label{s:a}"
                                       "See~\\ref{s:a}.\\end{document}\n")
    build_pdf(tmp_path)
    log = tmp_path / "build" / "main.log"
    assert "may have changed" not in log.read_text()
    log.write_text(log.read_text() + "\nLaTeX Warning: Label(s) may have changed. Rerun to get cross-references right.\n")
    r = subprocess.run([str(ROOT / "scripts" / "build_pdf.sh"), str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "one more pdflatex pass" in r.stdout, r.stdout[-2000:]
    assert "All targets" in r.stdout + r.stderr          # latexmk itself saw nothing to do
    assert "may have changed" not in log.read_text()


def test_log_checker_finds_undefined_references_and_citations():
    log = ("LaTeX Warning: Reference `sec:gone' on page 3 undefined on input line 12.\n"
           "Package natbib Warning: Citation `nobody2020' on page 1 undefined on input line 4.\n"
           "LaTeX Warning: There were undefined references.\n")
    assert len(log_problems(log)) == 3
    assert log_problems("LaTeX Warning: Reference `sec:intro' on page 1 undefined on inp\nut line 3.")
    assert log_problems("Output written on main.pdf (12 pages).\n") == []


def build_pdf(d: Path) -> Path:
    """``scripts/build_pdf.sh d`` (latexmk, then pdflatex while the log asks for a rerun: the Makefile's build)."""
    r = subprocess.run([str(ROOT / "scripts" / "build_pdf.sh"), str(d)], capture_output=True, text=True, timeout=900)
    log = d / "build" / "main.log"
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:] + (log.read_text()[-3000:] if log.exists() else "")
    return d


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """paper/ copied to a temporary folder and built there with latexmk (pdflatex + bibtex)."""
    need(*LATEX_TOOLS)
    d = copy_sources(tmp_path_factory.mktemp("paper") / "paper")
    return build_pdf(d)


def test_pdf_builds_without_undefined_references_or_citations(built):
    assert (built / "build" / "main.pdf").stat().st_size > 10_000
    assert log_problems((built / "build" / "main.log").read_text(errors="replace")) == []
    blg = (built / "build" / "main.blg").read_text(errors="replace")
    assert "didn't find a database entry" not in blg
    assert not re.search(r"error message", blg), blg[-2000:]


def aux_labels(aux: str) -> dict[str, str]:
    """``\\newlabel{key}{{number}{page}...}`` lines of a LaTeX .aux file -> {key: number} (hyperref's sub-labels
    such as ``key@cref`` are skipped)."""
    return {m[1]: m[2] for m in re.finditer(r"\\newlabel\{([^}]+)\}\{\{([^}]*)\}", aux) if "@" not in m[1]}


def test_markdown_numbering_matches_latex(built):
    """Section, table, figure and equation numbers in draft.md are the PDF's (labels of the .aux file)."""
    need("pandoc")
    aux = aux_labels((built / "build" / "main.aux").read_text(errors="replace"))
    draft = build_draft_md.read(built)
    assert draft.errors == []
    assert aux, "no label in the .aux file"
    assert {k: draft.labels.get(k) for k in aux} == aux


# --------------------------------------------------------------------------------------------- layout
MAX_OVERFULL_PT = 1.0
MAX_MAIN_TEXT_PAGES = 9
PLACEHOLDERS = ("not run yet", "not been run yet", "not yet run", "still pending", "to be completed",
                "not yet generated", "TODO", "TBD", "??")


def overfull_boxes(log: str, limit: float = MAX_OVERFULL_PT) -> list[str]:
    """``Overfull \\hbox (12.3pt too wide) ...`` (and \\vbox) lines of a LaTeX .log that exceed ``limit`` points,
    and ``Float too large for page by 49.4pt`` warnings (a table taller than the page runs into its footer)."""
    pattern = r"Overfull \\[hv]box \(([\d.]+)pt too \w+\)[^\n]*|Float too large for page by ([\d.]+)pt[^\n]*"
    return [m.group(0) for m in re.finditer(pattern, log) if float(m.group(1) or m.group(2)) > limit]


def label_pages(aux: str) -> dict[str, int]:
    """``\\newlabel{key}{{number}{page}...}`` lines of a .aux file -> {key: page}."""
    return {m[1]: int(m[2]) for m in re.finditer(r"\\newlabel\{([^}]+)\}\{\{[^}]*\}\{(\d+)\}", aux)}


def placeholders(text: str) -> list[str]:
    """Placeholder phrases ("not run yet", "??" of an undefined reference, ...) in text extracted from the PDF,
    with some context; line breaks and hyphenation at line ends are undone first."""
    flat = re.sub(r"\s+", " ", re.sub(r"-\n(?=[a-z])", "", text))
    out = []
    for phrase in PLACEHOLDERS:
        flags = 0 if phrase.isupper() else re.I
        out += [flat[max(0, m.start() - 60):m.end() + 20] for m in re.finditer(re.escape(phrase), flat, flags)]
    return out


def pdf_text(built: Path) -> str:
    """The built PDF's text (pdftotext, poppler-utils); without it, the Markdown twin converted from the built
    copy, which expands the same macros and generated files."""
    if shutil.which("pdftotext"):
        return subprocess.run(["pdftotext", "-enc", "UTF-8", str(built / "build" / "main.pdf"), "-"],
                              capture_output=True, text=True, check=True).stdout
    need("pandoc")
    return build_draft_md.read(built).markdown()


def test_layout_checkers_find_overfull_boxes_late_pages_and_placeholders():
    log = ("Overfull \\hbox (38.53256pt too wide) in paragraph at lines 8--45\n"
           "Overfull \\hbox (0.8pt too wide) in paragraph at lines 3--4\n"
           "Overfull \\vbox (2.1pt too high) has occurred while \\output is active\n")
    assert [b.split(" in ")[0].split(" has ")[0] for b in overfull_boxes(log)] == [
        "Overfull \\hbox (38.53256pt too wide)", "Overfull \\vbox (2.1pt too high)"]
    assert overfull_boxes("Underfull \\hbox (badness 10000) in paragraph\n") == []
    assert overfull_boxes("LaTeX Warning: Float too large for page by 49.38817pt on input line 327.\n"
                          "LaTeX Warning: Float too large for page by 0.5pt on input line 9.\n") == [
        "Float too large for page by 49.38817pt on input line 327."]
    aux = ("\\newlabel{sec:intro}{{1}{1}{Introduction}{section.1}{}}\n"
           "\\newlabel{paper@end-of-main-text}{{7}{11}{Conclusion}{section.7}{}}\n")
    assert label_pages(aux) == {"sec:intro": 1, "paper@end-of-main-text": 11}
    assert placeholders("The ablation has not been\nrun yet. See Section ??. Figure x is not yet gener-\nated.") \
        and len(placeholders("has not been run yet; see ??; not yet gener-\nated")) == 3
    assert placeholders("Everything ran; the todo list is empty and its cells are committed.") == []


def test_no_overfull_box_in_the_pdf(built):
    """No line, table or figure sticks out of the text block by more than 1 pt (a generated table that is too wide
    gets \\setlength{\\PaperFitTables}{\\linewidth} or a smaller font at its \\input site)."""
    bad = overfull_boxes((built / "build" / "main.log").read_text(errors="replace"))
    assert bad == [], "overfull boxes in build/main.log:\n" + "\n".join(bad)


ARXIV_ABSTRACT_CHARS = 1920      # arXiv's limit on the abstract field of a submission's metadata


def abstract_of(text: str) -> str:
    """The abstract of a PDF's text (between "Abstract" and the first section), lines joined, hyphenation undone."""
    m = re.search(r"\bAbstract\s+(.*?)\s+(?:#+\s*)?1\s+Introduction\b", text, re.S)
    return re.sub(r"\s+", " ", re.sub(r"-\n(?=[a-z])", "", m.group(1))).strip() if m else ""


def test_abstract_fits_arxivs_metadata_field(built):
    """The generated abstract grows with the findings; arXiv's abstract field takes 1,920 characters."""
    assert abstract_of("Title\nAbstract\nLoRA trains a low-rank up-\ndate.\n1 Introduction\nText") == \
        "LoRA trains a low-rank update."
    abstract = abstract_of(pdf_text(built))
    assert 500 < len(abstract) <= ARXIV_ABSTRACT_CHARS, f"{len(abstract)} characters: {abstract[:80]}..."


def test_main_text_fits_nine_pages(built):
    """The last line of the main text is on page 9 or earlier (main.tex writes the label paper@end-of-main-text
    just before the references); references and appendix follow."""
    pages = label_pages((built / "build" / "main.aux").read_text(errors="replace"))
    end = pages.get("paper@end-of-main-text")
    assert end is not None, "main.tex no longer writes \\label{paper@end-of-main-text} before the references"
    assert end <= MAX_MAIN_TEXT_PAGES, (
        f"the main text ends on page {end} (at most {MAX_MAIN_TEXT_PAGES}): move detail to the appendix")
    appendix = [k for k, p in pages.items() if k.startswith("app:") and p <= end]
    assert appendix == [], f"appendix sections before the end of the main text: {appendix}"


def test_no_placeholder_text_in_the_pdf(built):
    found = placeholders(pdf_text(built))
    assert found == [], ("placeholder text printed in the PDF (a generated macro's fallback, or prose "
                         "waiting for a result):\n" + "\n".join(found))


# --------------------------------------------------------------------------------------------- lint, spelling
def test_chktex_clean():
    need("chktex")
    files = [str(p.relative_to(PAPER)) for p in own_tex_files()]
    r = subprocess.run(["chktex", "-q", "-I0", "-l", "chktexrc", *files], cwd=PAPER, capture_output=True,
                       text=True)
    out = (r.stdout + r.stderr).strip()
    assert out == "", f"chktex warnings (fix them, or suppress with a reason in paper/chktexrc):\n{out}"


ASPELL = ["aspell", "list", "--mode=tex", "--lang=en_GB-ise", "--encoding=utf-8"] + [
    f"--add-tex-command={c}" for c in ("citep op", "citet op", "citealp op", "PaperGraphic p", "input p",
                                       "InputIfFileExists ppp", "newcommand p", "texttt p", "url p", "label p",
                                       "ref p", "bibliography p", "bibliographystyle p", "includegraphics op",
                                       "hypersetup p", "pdfstringdefDisableCommands p")]


def misspelled(text: str) -> list[str]:
    words = {w.strip().lower() for w in (PAPER / "wordlist.txt").read_text().splitlines()
             if w.strip() and not w.startswith("#")}
    r = subprocess.run(ASPELL, input=text, capture_output=True, text=True, check=True)
    out = []
    for w in r.stdout.split():
        base = re.sub(r"'s$", "", w)
        if base.lower() in words or re.fullmatch(r"[lrcp]+", base):  # tabular column specs
            continue
        out.append(w)
    return sorted(set(out))


def test_spelling():
    need("aspell")
    text = "\n".join(p.read_text() for p in own_tex_files())
    bad = misspelled(text)
    assert bad == [], f"unknown words (fix, or add real words to paper/wordlist.txt): {bad}"


def test_spell_checker_reports_a_typo():
    need("aspell")
    assert misspelled("We fine-tune \\texttt{not_a_word} with LoRA and recieve a result.") == ["recieve"]


def proselint_problems(text: str, tmp_path: Path) -> list[str]:
    """proselint's findings on plain text, without the checks of paper/proselint-allow.txt."""
    allow = [line.split("#", 1)[0].strip() for line in (PAPER / "proselint-allow.txt").read_text().splitlines()]
    config = tmp_path / "proselint.json"
    config.write_text(json.dumps({"checks": {c: False for c in allow if c}}))
    r = subprocess.run([sys.executable, "-m", "proselint", "check", "--config", str(config), "-o", "json"],
                       input=text, capture_output=True, text=True)
    assert r.returncode in (0, 1) and r.stdout.strip(), r.stderr[-2000:]
    found = json.loads(r.stdout)["result"]["<stdin>"]["diagnostics"]
    lines = text.splitlines()
    return [f"{d['check_path']}: {d['message']} ... {lines[d['pos'][0] - 1][max(0, d['pos'][1] - 40):d['pos'][1] + 40]}"
            for d in found]


def test_prose_lint(tmp_path):
    """proselint on the running text (pandoc's plain text of the paper without tables, math, code and citations)."""
    pytest.importorskip("proselint")
    need("pandoc")
    bad = proselint_problems(build_draft_md.read(PAPER).prose(), tmp_path)
    assert bad == [], ("proselint findings (fix the prose, or allow a check that gives false positives in "
                       "paper/proselint-allow.txt with the reason):\n" + "\n".join(bad))


def test_prose_lint_reports_a_problem(tmp_path):
    pytest.importorskip("proselint")
    assert [p.split(":")[0] for p in proselint_problems("The results are very unique.\n", tmp_path)] == [
        "uncomparables", "weasel_words.very"]


# --------------------------------------------------------------------------------------------- figures
def referenced_figures() -> set[str]:
    files = [PAPER / "main.tex", *sorted((PAPER / "sections").glob("*.tex")), *sorted(GENERATED.glob("*.tex"))]
    text = "\n".join(p.read_text() for p in files)
    return set(re.findall(r"\\PaperGraphic\{([^}]+)\}", text))


def test_every_figure_file_is_referenced():
    names = referenced_figures()
    main_grid = {n for n in ("lr_curves", "main_forest", "frontier", "replications")   # drawn once their cells exist
                 if (PAPER / "figures" / f"{n}.pdf").exists()}
    assert names == {"forest", "params_vs_loss", "rank_per_layer", "pareto", "loss_curves"} | main_grid
    files = [p for p in (PAPER / "figures").glob("*") if p.is_file() and not p.name.startswith(".")]
    unused = sorted(p.name for p in files if p.stem not in names)
    assert unused == [], f"figure files that the paper does not use: {unused}"


FIGURE_SCRIPTS = re.search(r"^FIGURES := (.*)$", (ROOT / "Makefile").read_text(), flags=re.M)[1].split()


@pytest.mark.parametrize("name", FIGURE_SCRIPTS)
def test_figure_is_legible_at_print_size(name, tmp_path, monkeypatch):
    """Each figure of `make figures`, drawn from the committed pilot results: made at the printed width (main.tex
    includes it at \\linewidth = 6.5 in, uncropped), no text under 8 pt, no empty panel."""
    pytest.importorskip("matplotlib")
    import importlib

    import _plotting

    if not (ROOT / "results" / "pilot").is_dir():
        pytest.skip("no committed pilot result")
    mod = importlib.import_module(f"fig_{name}")
    figs = []
    monkeypatch.setattr(mod, "save", lambda fig, out, stem: figs.append((fig, stem)))
    assert mod.main(["--exp", "pilot", "--out", str(tmp_path)]) == 0
    assert [stem for _, stem in figs] == [name]
    fig = figs[0][0]
    assert tuple(round(v, 3) for v in fig.get_size_inches())[0] == _plotting.WIDTH == 6.5
    assert _plotting.small_texts(fig) == []
    boxes = [ax.get_position().bounds for ax in fig.axes]
    empty = [ax.get_title() or i for i, ax in enumerate(fig.axes)
             if ax.get_visible() and not ax.has_data() and boxes.count(boxes[i]) == 1]  # twin axes share a box
    assert empty == [], f"empty panels: {empty}"
    _plotting.plt.close(fig)


def test_small_text_is_reported():
    pytest.importorskip("matplotlib")
    import _plotting

    fig = _plotting.figure(2)
    fig.text(0.5, 0.5, "tiny", fontsize=6)
    fig.text(0.5, 0.2, "fine", fontsize=8)
    assert _plotting.small_texts(fig) == ["'tiny' (6 pt)"]
    _plotting.plt.close(fig)


def test_panel_grid_leaves_no_empty_slot():
    pytest.importorskip("matplotlib")
    import _plotting

    fig = _plotting.figure(3)
    axes = _plotting.panel_grid(fig, 5, 3)
    assert len(fig.axes) == len(axes) == 5
    starts = [ax.get_subplotspec().colspan.start for ax in axes]
    assert starts == [0, 2, 4, 1, 3]  # the second row of two is centred
    _plotting.plt.close(fig)


# --------------------------------------------------------------------------------------------- generated numbers
@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    """The generated files as a regeneration from the committed results/ would write them."""
    return numbers.build(ROOT / "results")


def test_numbers_match_the_committed_results(generated):
    stale = numbers.stale(generated, GENERATED)
    assert stale == [], f"paper/generated/{stale} differ from a regeneration: run `make paper` and commit"


def test_outputs_name_every_generated_file(generated):
    """OUTPUTS (the files the prose checks read) is exactly what build writes: a new generated file is checked."""
    assert sorted(generated) == sorted(numbers.OUTPUTS)


def test_a_stale_numbers_file_is_detected(generated, tmp_path):
    out = tmp_path / "generated"
    shutil.copytree(GENERATED, out)
    assert numbers.stale(generated, out) == []
    text = (out / "numbers.tex").read_text()
    m = re.search(r"\\newcommand\{\\BudgetREightParams\}\{([^}\n]*)\}", text)
    assert m, "numbers.tex lacks \\BudgetREightParams"
    (out / "numbers.tex").write_text(text.replace(m.group(0), m.group(0).replace(m.group(1), m.group(1) + "1")))
    assert numbers.stale(generated, out) == ["numbers.tex"]
    (out / "rank_maps.tex").unlink()
    assert numbers.stale(generated, out) == ["numbers.tex", "rank_maps.tex"]
    assert numbers.main(["--check", "--out", str(out), "--results", str(ROOT / "results")]) == 1


def test_runs_table_lists_the_pilot_once_and_marks_the_main_jobs_run(generated):
    """One row per pilot run; the main job's run (also a pilot cell) is a marked row, not a second one."""
    body = generated["runs_table.tex"].split("\\midrule", 1)[-1].split("\\bottomrule", 1)[0]
    rows = [line for line in body.splitlines() if line.rstrip().endswith("\\\\")]
    exps = numbers.load_experiments(ROOT / "results")
    assert len(rows) == len(exps["pilot"]) == 24
    assert sum("$^*$" in row for row in rows) == len(exps["default"]) == 1


def test_macros_are_letters_only_sorted_and_deterministic(generated):
    names = re.findall(r"^\\newcommand\{\\([^}]*)\}", generated["numbers.tex"], flags=re.M)
    assert names and all(n.isalpha() for n in names)
    assert names == sorted(names)
    assert numbers.build(ROOT / "results") == generated


def test_every_generated_macro_is_used_by_the_paper(generated):
    """No dead generation: each macro of numbers.tex is read by the paper (its .tex sources, a generated table, or
    another macro)."""
    macros = numbers.read_macros(generated["numbers.tex"])
    texts = [p.read_text() for p in (ROOT / "paper").glob("**/*.tex")
             if "build" not in p.parts and p.parent.name != "generated"]
    texts += [t for name, t in generated.items() if name != "numbers.tex"] + list(macros.values())
    used = set(re.findall(r"\\([A-Za-z]+)", "\n".join(texts)))
    assert sorted(set(macros) - used) == []


def stage_one_file(results: Path) -> Path:
    """The result file of one stage-1 cell of the main grid (experiments/main.yaml) under ``results``."""
    from adaptive_lora.sweep import cells, load_grid
    from adaptive_lora.paper import MAIN_GRID
    run_id = cells(load_grid(MAIN_GRID))[-1].run_id
    return results / "main" / f"{run_id.replace(':', '_')}.json"


@pytest.mark.parametrize("drop, message", [
    ("everything", "the pilot lacks"), ("one pilot cell", "the pilot lacks"), ("the default run", "the pilot lacks"),
    ("one stage-1 cell", "stage 1 is not complete"), ("every seed but 0", "no strategy has two paired seeds")])
def test_incomplete_results_are_refused(tmp_path, drop, message, capsys):
    """The pilot and stage 1 of the main grid are finished and frozen, and the main text's figure needs a primary
    endpoint: the paper is built from all of it or not at all (a one-line error, nothing written)."""
    out = tmp_path / "results"
    shutil.copytree(ROOT / "results", out)
    if drop == "everything":
        shutil.rmtree(out)
        out.mkdir()
    elif drop == "one pilot cell":
        next(iter(sorted((out / "pilot").glob("*_weight_norm_r8_*.json")))).unlink()
    elif drop == "the default run":
        shutil.rmtree(out / "default")
    elif drop == "one stage-1 cell":
        stage_one_file(out).unlink()
    else:
        for f in (out / "main").glob("*.json"):
            if json.loads(f.read_text())["config"]["seed"] != 0:
                f.unlink()
    with pytest.raises(numbers.IncompleteResults, match=message):
        numbers.build(out)
    gen = tmp_path / "generated"
    assert numbers.main(["--out", str(gen), "--results", str(out)]) == 2 and not gen.exists()
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_generator_calls_the_statistics_module():
    """adaptive_lora.paper has no statistics of its own (it calls adaptive_lora.stats) and the script is only its
    command line."""
    src = (ROOT / "adaptive_lora" / "paper.py").read_text()
    own = re.findall(r"^def (mean_ci|paired\w*|holm\w*|seed_spread|seeds_needed|ttest\w*|t_interval)\b", src,
                     flags=re.M)
    assert own == [] and "scipy" not in src and "numpy" not in src
    assert re.findall(r"^def (\w+)", (ROOT / "scripts" / "make_paper_numbers.py").read_text(), flags=re.M) == ["main"]


def test_pilot_comparisons_agree_with_the_summary():
    """The paired differences, intervals and Holm's p behind the paper's pilot verdicts are stats.summarize's
    (summary.md's)."""
    from adaptive_lora import paper
    from adaptive_lora.report import summarize
    from adaptive_lora.results import load_results

    rows = [r for r in summarize(load_results("pilot", ROOT / "results"))
            if r["model"] == paper.MODEL and r["strategy"] != "uniform" and r["budget"] == paper.MAIN_BUDGET]
    cmps = paper.load_inputs(ROOT / "results").comparisons
    assert sorted(cmps) == sorted(r["strategy"] for r in rows) and len(rows) == 6
    for r in rows:
        c = cmps[r["strategy"]]
        got = (c["diff_mean"], c["ci_low"], c["ci_high"], c["p"], c["p_holm"])
        want = (r["diff_vs_uniform_mean"], r["diff_ci95_low"], r["diff_ci95_high"], r["p_paired_t"], r["p_holm"])
        assert got == pytest.approx(want, rel=1e-12)


def test_verdict_follows_the_holm_adjusted_interval():
    """'significantly better/worse' is stats.verdict of the Holm-adjusted interval; a difference whose 95 % interval
    excludes zero but whose adjusted interval does not is 'not significantly different', and the sentence says so."""
    from adaptive_lora import paper, stats

    uni = [2.0, 2.1, 1.9]
    def cells(losses):
        return {seed: {"eval_loss": v} for seed, v in enumerate(losses)}

    pairs = {name: (cells([u + d for u, d in zip(uni, diffs)]), cells(uni)) for name, diffs in {
        "clear": [-0.0100, -0.0101, -0.0099],     # p ~ 3e-5: rejected at Holm's first step
        "near": [0.005, 0.008, 0.011],            # p ~ 0.044: 95 % CI excludes 0, Holm's p ~ 0.09
        "null": [0.001, -0.002, 0.0015]}.items()}
    cmps = paper.comparisons(pairs)
    codes = {n: paper.verdict(c) for n, c in cmps.items()}
    assert codes["clear"][0] == "better" and codes["clear"][1].startswith("significantly better than uniform (")
    assert "Holm-adjusted" in codes["clear"][1] and "$p_{\\mathrm{Holm}}" in codes["clear"][1]
    assert stats.verdict(cmps["near"]["ci_low"], cmps["near"]["ci_high"]) == "worse"
    assert codes["near"][0] == "same"
    assert codes["near"][1].endswith("; the unadjusted interval excludes zero but the adjusted one does not)")
    assert codes["null"][0] == "same" and "unadjusted" not in codes["null"][1]
    for name, c in cmps.items():  # the adjusted intervals agree with Holm's p (t-test / t-interval duality)
        assert (codes[name][0] in ("better", "worse")) == (c["p_holm"] < stats.ALPHA)
    lone = paper.comparisons({"x": pairs["near"]}, corrected=False)["x"]
    code, sentence = paper.verdict(lone, "its shuffled control")
    assert code == "worse" and "Holm" not in sentence and "$p = 0.04$" in sentence
    assert paper.verdict(None)[0] == "untested"


def test_adalora_ranks_are_read_from_its_results(tmp_path):
    """AdaLoRA's target and initial rank are the ones its results record, not re-derived from the budget."""
    from adaptive_lora import paper

    out = tmp_path / "results"
    shutil.copytree(ROOT / "results", out)
    for p in sorted((out / "pilot").glob("*_adalora_r8_*.json")):
        r = json.loads(p.read_text())
        r["adalora"].update(target_r=5, init_r=9)
        r["final_params"] = 1_234_567
        p.write_text(json.dumps(r))
    macros, files = paper.adalora(paper.load_inputs(out))
    assert (macros["AdaloraTargetRank"], macros["AdaloraInitRank"], files) == ("5", "9", {})
    assert "ended with 1{,}234{,}567 trainable parameters" in macros["ResultAdaloraSentence"]


def test_strategy_table_matches_the_committed_results():
    report = pytest.importorskip("adaptive_lora.report")
    if not all(hasattr(report, f) for f in ("summarize", "strategy_table_latex")):
        pytest.skip("adaptive_lora.report has no summarize/strategy_table_latex")
    from adaptive_lora.results import load_results

    results = load_results("pilot", ROOT / "results")
    path = GENERATED / "strategy_table.tex"
    if not results:
        assert not path.exists(), "paper/generated/strategy_table.tex exists but results/pilot/ has no result"
        return
    assert path.exists(), "results/pilot/ has results but paper/generated/strategy_table.tex is missing (make paper)"
    assert path.read_text() == report.strategy_table_latex(report.summarize(results), "pilot"), \
        "paper/generated/strategy_table.tex is stale: run `make paper`"


# --------------------------------------------------------------------------------------------- Markdown draft
def latex_left(md: str) -> list[str]:
    """LaTeX commands left in Markdown outside code and math."""
    text = re.sub(r"```.*?```|`[^`\n]*`", "", md, flags=re.S)
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$", "", text, flags=re.S)
    return re.findall(r"\\[A-Za-z]+", text)


def test_draft_md_is_current_and_fully_converted():
    need("pandoc")
    md, draft = build_draft_md.convert(PAPER)
    assert draft.errors == []
    assert (PAPER / "draft.md").exists(), "paper/draft.md is missing: run `make paper`"
    assert (PAPER / "draft.md").read_text() == md, "paper/draft.md is stale: run `make paper`"
    assert "## References" in md and "(Hu et al. 2022)" in md and "[@" not in md
    assert latex_left(md) == []
    assert "\n| Strategy " in md and "|:--" in md, "tables are not Markdown pipe tables"
    assert "![**Figure 1.**" in md and "(figures/forest.png)" in md


def test_converter_fails_loudly_on_unknown_latex(tmp_path):
    need("pandoc")
    (tmp_path / "main.tex").write_text("\\begin{document}\n\\section{A}\\label{sec:a}\nSee Section~\\ref{sec:a}, "
                                       "\\emph{x} and \\unknowncommand{y}.\n\\end{document}\n")
    (tmp_path / "metadata.yaml").write_text("title: T\nauthors: [{name: N, affiliation: U}]\n")
    (tmp_path / "references.bib").write_text("")
    draft = build_draft_md.read(tmp_path)
    assert any("unknowncommand" in e for e in draft.errors)
    md = draft.markdown()
    assert "## 1 A" in md and "See Section\u00a01, *x*" in md
    assert latex_left("a \\emph{b} `\\c` $\\d$") == ["\\emph"]


def test_converter_prints_a_two_part_tables_caption_once(tmp_path):
    """Two tabulars in one table float become two pipe tables and one caption, after the second."""
    need("pandoc")
    (tmp_path / "main.tex").write_text("\\begin{document}\n\\begin{table}\\caption{Both parts.}\\label{tab:a}\n"
                                       "\\begin{tabular}{l}\nx \\\\\n\\end{tabular}\\hspace{2em}\n"
                                       "\\begin{tabular}{l}\ny \\\\\n\\end{tabular}\n\\end{table}\n"
                                       "\\end{document}\n")
    (tmp_path / "metadata.yaml").write_text("title: T\nauthors: [{name: N, affiliation: U}]\n")
    (tmp_path / "references.bib").write_text("")
    draft = build_draft_md.read(tmp_path)
    md = draft.markdown()
    assert draft.errors == [] and md.count("Both parts.") == 1
    assert md.index("| x") < md.index("| y") < md.index("**Table 1.** Both parts.")


# --------------------------------------------------------------------------------------------- arXiv
def test_arxiv_tarball_compiles_standalone(built, tmp_path):
    import make_arxiv

    tarball = tmp_path / "arxiv.tar.gz"
    names = make_arxiv.make_tarball(built, built / "build", tarball)
    assert "main.tex" in names and "main.bbl" in names
    junk = [n for n in names if n.endswith(make_arxiv.JUNK) or n.startswith("build/") or n.endswith(".yaml")]
    assert junk == []
    empty = tmp_path / "arxiv"
    empty.mkdir()
    with tarfile.open(tarball) as tar:
        tar.extractall(empty, filter="data")
    log = ""
    for _ in range(4):  # arXiv runs pdflatex (no BibTeX) until the references settle
        r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=empty,
                           capture_output=True, text=True, timeout=600)
        log = (empty / "main.log").read_text(errors="replace")
        assert r.returncode == 0, log[-3000:]
        if "Rerun to get" not in log and "Label(s) may have changed" not in log:
            break
    assert log_problems(log) == []
    assert (empty / "main.pdf").stat().st_size > 10_000


# --------------------------------------------------------------------------------------------- archive metadata
def test_citation_zenodo_and_license_agree_with_the_paper_metadata():
    import yaml

    meta = yaml.safe_load((PAPER / "metadata.yaml").read_text())
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    zen = json.loads((ROOT / ".zenodo.json").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT" and cff["type"] == "software"
    assert cff["title"] == zen["title"] == meta["title"]
    names = [a["name"] for a in meta["authors"]]
    assert [f"{a['given-names']} {a['family-names']}" for a in cff["authors"]] == names
    assert [" ".join(reversed(c["name"].split(", "))) for c in zen["creators"]] == names
    assert [a["affiliation"] for a in cff["authors"]] == [c["affiliation"] for c in zen["creators"]] == \
        [a["affiliation"] for a in meta["authors"]]
    lic = (ROOT / "LICENSE").read_text()
    assert lic.startswith("MIT License") and "Copyright (c) 2026 Taylor Mohney and contributors" in lic
    assert "CC BY-NC 4.0" in lic and "GSM8K" in lic and "Copyright (c) 2021 OpenAI" in lic


# --------------------------------------------------------------------------------------------- main grid (v2)
def v2_cells() -> list[dict]:
    """Synthetic protocol-v2 cells at r8: uniform picks 3e-4 on dev, attn_heavy 1e-4 (better by 0.1 at every
    seed, give or take 0.01), ffn_heavy 3e-4 (no effect); the test losses at the unchosen lrs are decoys."""
    out = []
    uni = [1.80, 1.82, 1.79]
    for s in range(3):
        for strategy, lr, dev, test in (("uniform", 1e-4, 2.5, 9.0), ("uniform", 3e-4, 2.4, uni[s]),
                                        ("attn_heavy", 1e-4, 2.3, uni[s] - 0.1 + 0.01 * (s - 1)),
                                        ("attn_heavy", 3e-4, 2.35, 9.0), ("ffn_heavy", 1e-4, 2.6, 9.0),
                                        ("ffn_heavy", 3e-4, 2.5, uni[s] + 0.02 * (s - 1))):
            out.append({"run_id": f"{strategy}-{lr:g}-{s}", "dev_loss": dev, "eval_loss": test,
                        "config": {"model": "smollm2-135m", "data": "alpaca", "budget": "r8", "strategy": strategy,
                                   "seed": s, "lr": lr},
                        "provenance": {"training_path_hash": "h1"}})
    return out


def test_main_endpoint_sentence_and_table_from_the_reports_statistics():
    from adaptive_lora import paper, writers
    primary, secondary, away = paper.main_endpoint_rows(v2_cells())
    assert [(r["strategy"], r["lr"], r["n_pairs"], r["verdict"]) for r in primary] == [
        ("attn_heavy", 1e-4, 3, "better"), ("ffn_heavy", 3e-4, 3, "no detectable difference")]
    sentence = paper.main_endpoint_sentence(primary)
    assert sentence == (
        "With 3 paired seeds per strategy, the Holm-adjusted intervals of the primary endpoint "
        "(Figure~\\ref{fig:main-forest}; Table~\\ref{tab:main-endpoint} in Appendix~\\ref{app:main-robustness}) "
        "give: \\texttt{attn\\_heavy}: better; \\texttt{ffn\\_heavy}: no detectable difference, but not shown "
        "equivalent (inconclusive).")
    table = writers.table_latex(writers.endpoint_table(primary + secondary, notes=False))
    assert "$-$0.1000" in table and "primary endpoint" in table and "secondary endpoint" in table
    verdicts = ("Holm-adjusted intervals of the test loss "
                "say: \\texttt{attn\\_heavy} beats uniform rank; 1 was inconclusive.")   # the abstract counts the
    # inconclusive and equivalent arms, and leaves what "inconclusive" means to the text (arXiv's length limit)
    assert paper.main_abstract_endpoint(primary) == "With 3 paired seeds per arm, " + verdicts
    uneven = [dict(primary[0], n_pairs=2), primary[1]]
    assert paper.main_abstract_endpoint(uneven).startswith("With 2 to 3 paired seeds per arm, Holm-adjusted")
    # one seed per strategy: no interval, so no primary row
    assert paper.main_endpoint_rows([r for r in v2_cells() if r["config"]["seed"] == 0]) == ([], [], [])
    assert away == []   # every cell at r8


def test_main_forest_is_legible_and_skips_without_pairs(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import _plotting
    import fig_main_forest
    monkeypatch.setenv("ADAPTIVE_LORA_RESULTS", str(tmp_path / "results"))
    (tmp_path / "results" / "main").mkdir(parents=True)
    out = tmp_path / "fig"
    out.mkdir()
    (out / "main_forest.pdf").write_text("stale")
    assert fig_main_forest.main(["--out", str(out)]) == 0 and not (out / "main_forest.pdf").exists()
    for r in v2_cells():
        (tmp_path / "results" / "main" / f"{r['run_id']}.json").write_text(json.dumps(r))
    figs = []
    monkeypatch.setattr(fig_main_forest, "save", lambda fig, o, stem: figs.append((fig, stem)))
    assert fig_main_forest.main(["--out", str(out)]) == 0 and [s for _, s in figs] == ["main_forest"]
    fig = figs[0][0]
    assert round(fig.get_size_inches()[0], 3) == _plotting.WIDTH and _plotting.small_texts(fig) == []
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["attn_heavy (lr 0.0001, n = 3)", "ffn_heavy (lr 0.0003, n = 3)"]
    # attn_heavy's own lr is not uniform's: the same comparison at uniform's lr (its test loss there: 9.0) in grey;
    # at +7.2 nats it lies far beyond the primary rows, so it is an arrowhead at the right edge with its value printed
    ax = fig.axes[0]
    assert ax.get_xlim()[1] < 0.2                         # the axis follows the primary rows
    assert not [ln for ln in ax.get_lines() if ln.get_marker() == "D" and len(ln.get_xdata())]
    arrow = [ln for ln in ax.get_lines() if ln.get_marker() == ">"]
    lo, hi = ax.get_xlim()
    assert len(arrow) == 1 and hi - 0.02 * (hi - lo) < arrow[0].get_xdata()[0] < hi
    mean = 9.0 - (1.80 + 1.82 + 1.79) / 3
    assert [t.get_text() for t in ax.texts] == [f"+{mean:.4f}"]
    # attn_heavy is better (adjusted interval excludes 0): filled; ffn_heavy is not: hollow
    points = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert [ln.get_markerfacecolor() == ln.get_color() for ln in points] == [True, False]
    _plotting.plt.close(fig)


def test_main_forest_keeps_a_near_grey_interval_on_the_axis():
    """A secondary (grey) interval within half the primary span beyond it widens the axis and is drawn whole."""
    pytest.importorskip("matplotlib")
    import _plotting
    import fig_main_forest
    row = {"diff_mean": 0.0, "ci_low": -0.005, "ci_high": 0.005, "adj_ci_low": -0.01, "adj_ci_high": 0.01}
    near = {"diff_mean": 0.02, "ci_low": 0.015, "ci_high": 0.025}     # span [-0.01, 0.01]: reach to +-0.02
    assert fig_main_forest.grey_reach([row["adj_ci_low"], row["adj_ci_high"]], [near]) == [0.015]
    fig = _plotting.figure(2.0)
    ax = fig.add_subplot(1, 1, 1)
    _plotting.difference_axis(ax, [-0.01, 0.01, 0.015], 1, 0.01)
    fig_main_forest.grey_row(ax, 0.0, near)
    assert ax.get_xlim()[1] < 0.025 and [ln.get_marker() for ln in ax.get_lines()][-1] == ">"   # mean past the edge
    fig_main_forest.grey_row(ax, 0.0, dict(near, diff_mean=0.012, ci_high=0.013))
    assert ax.get_lines()[-1].get_marker() == "D"
    _plotting.plt.close(fig)


def frontier_cells(budgets=(2, 8, 32), seeds=3) -> list[dict]:
    """Protocol-v2 cells of stage 4: uniform and attn_heavy at each rank in ``budgets`` (one lr, ``seeds`` seeds);
    uniform's loss falls by 0.03 per doubling of rank, attn_heavy is 0.005 below it at every seed."""
    out = []
    for rank in budgets:
        for s in range(seeds):
            for strategy, shift in (("uniform", 0.0), ("attn_heavy", -0.005)):
                loss = 1.9 - 0.03 * math.log2(rank) + 0.001 * s + shift
                out.append({"run_id": f"{strategy}-r{rank}-{s}", "dev_loss": loss, "eval_loss": loss,
                            "trainable_params": 300_000 * rank,
                            "config": {"model": "smollm2-135m", "data": "alpaca", "budget": f"r{rank}",
                                       "strategy": strategy, "seed": s, "lr": 3e-3},
                            "provenance": {"training_path_hash": "h1"}})
    return out


def test_frontier_figure_draws_uniforms_frontier_and_the_differences_by_budget(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import _plotting
    import fig_frontier
    monkeypatch.setenv("ADAPTIVE_LORA_RESULTS", str(tmp_path / "results"))
    main = tmp_path / "results" / "main"
    main.mkdir(parents=True)
    out = tmp_path / "fig"
    out.mkdir()
    (out / "frontier.pdf").write_text("stale")
    for r in frontier_cells(budgets=(8,)):      # one budget: no frontier, and a stale figure is removed
        (main / f"{r['run_id']}.json").write_text(json.dumps(r))
    assert fig_frontier.main(["--out", str(out)]) == 0 and not (out / "frontier.pdf").exists()
    for r in frontier_cells():
        (main / f"{r['run_id']}.json").write_text(json.dumps(r))
    figs = []
    monkeypatch.setattr(fig_frontier, "save", lambda fig, o, stem: figs.append((fig, stem)))
    one = frontier_cells(budgets=(16,), seeds=1)[0]      # uniform at r16, one seed: drawn hollow, and named
    (main / "one.json").write_text(json.dumps(one))
    assert fig_frontier.main(["--out", str(out)]) == 0
    assert figs.pop()[0].legends[0].get_texts()[-1].get_text() == "hollow: n < 2 seeds"
    (main / "one.json").unlink()
    assert fig_frontier.main(["--out", str(out)]) == 0 and [s for _, s in figs] == ["frontier"]
    fig = figs[0][0]
    assert round(fig.get_size_inches()[0], 3) == _plotting.WIDTH and _plotting.small_texts(fig) == []
    left, right = fig.axes
    # the legend sits below the panels (wide two-seed intervals would cross it inside an axes)
    assert left.get_legend() is None
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["uniform", "attn_heavy"]    # no hollow point
    assert [t.get_text() for t in left.get_xticklabels()] == ["0.6\nr2", "2.4\nr8", "9.6\nr32"]
    line = [ln for ln in left.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) == 3]
    assert len(line) == 1 and list(line[0].get_ydata()) == pytest.approx([1.9 - 0.03 * k + 0.001 for k in (1, 3, 5)])
    # right: attn_heavy minus uniform at r2, r8 and r32, each -0.005 (one mean marker per budget)
    means = [ln for ln in right.get_lines() if ln.get_marker() == "o"]
    assert [ln.get_ydata()[0] for ln in means] == pytest.approx([-0.005] * 3)
    _plotting.plt.close(fig)


def test_frontier_finding_reads_the_multipliers_of_the_decided_arms():
    from adaptive_lora import paper
    one = paper.frontier_finding(paper.main_frontier(frontier_cells(budgets=(8,))), [], [])
    assert one == ("So far uniform rank has 2 or more seeds at 1 of its 1 budgets (Figure~\\ref{fig:frontier}), so no "
                   "multiplier can be read off its frontier yet.")
    # the side comes from its own field (the note's wording may change)
    robust = [{"strategy": "a", "endpoint": "primary", "multiplier": 1.5, "multiplier_side": ""},
              {"strategy": "b", "endpoint": "primary", "multiplier": math.nan, "multiplier_side": "below"},
              {"strategy": "c", "endpoint": "primary", "multiplier": 1.1, "multiplier_side": ""},
              {"strategy": "d", "endpoint": "primary", "multiplier": math.nan, "multiplier_side": "above"},
              {"strategy": "a[fixed-alpha]", "endpoint": "primary, scaling ablation", "multiplier": 2.0,
               "multiplier_side": ""}]
    primary = [endpoint_row("a", "better"), endpoint_row("b", "better"), endpoint_row("c", "equivalent"),
               endpoint_row("d", "worse")]
    assert paper.frontier_finding(paper.main_frontier(frontier_cells()), robust, primary) == (
        "Over the 3 budgets with 2 or more seeds, uniform rank's test loss goes from 1.8710 at 600{,}000 to 1.7510 at "
        "9{,}600{,}000 parameters (Figure~\\ref{fig:frontier}). On it, the equivalence margin ($\\pm$0.01 nats around "
        "uniform rank's loss at \\texttt{r8}) spans uniform rank from 0.794$\\times$ to 1.26$\\times$ its \\texttt{r8} "
        "parameters. Read off it, the multipliers of the arms that beat or "
        "lost to uniform rank at \\texttt{r8} are: \\texttt{a} 1.50$\\times$; \\texttt{b} beyond the frontier's "
        "low-loss end; \\texttt{d} beyond the frontier's high-loss end.")


def test_budget_finding_reads_the_arms_away_from_r8():
    from adaptive_lora import paper
    cells = frontier_cells()
    for r in cells:     # attn_heavy minus uniform: -0.005, -0.004, -0.003 at seeds 0-2 (t interval +-0.0025)
        if r["config"]["strategy"] == "attn_heavy":
            r["eval_loss"] += 0.001 * r["config"]["seed"]
    primary, _, away = paper.main_endpoint_rows(cells)
    assert [(r["strategy"], r["budget"]) for r in primary] == [("attn_heavy", "r8")]
    assert paper.budget_finding(away) == (
        "Away from \\texttt{r8}, each arm minus uniform rank at the same seed and budget (3 paired seeds; Holm over "
        "the arms at each budget): at \\texttt{r2}, \\texttt{attn\\_heavy} $-0.0040$ nats: \\texttt{attn\\_heavy} "
        "(by less than the margin) beats uniform rank; at \\texttt{r32}, \\texttt{attn\\_heavy} $-0.0040$ nats: "
        "\\texttt{attn\\_heavy} (by less than the margin) beats uniform rank.")
    assert paper.budget_finding([]) == ""


@pytest.mark.parametrize("frontier, span", [
    # loss falls 0.02 per doubling: +-0.01 is half a doubling each way, 2^-0.5 and 2^0.5
    ([(1e6, 1.84), (2e6, 1.82), (4e6, 1.80)], "from 0.707$\\times$ to 1.41$\\times$"),
    # nearly flat: the margin reaches past both ends (no extrapolation), and the frontier's bump is flagged
    ([(1e6, 1.805), (2e6, 1.80), (4e6, 1.801), (8e6, 1.795)],
     "from less than 0.5$\\times$ to more than 4$\\times$ its \\texttt{r8} parameters (read roughly off its "
     "monotone fit: the mean loss does not fall at every step)"),
    ([(1e6, 1.84), (4e6, 1.80)], None),   # no point at r8 (2e6): nothing said
    ([(1e6, 1.84), (2e6, 1.80)], None),   # no budget above r8 yet: nothing said
])
def test_margin_span_in_parameter_terms(frontier, span):
    from adaptive_lora import paper, stats
    text = paper.margin_span(frontier, [2e6, 2e6], stats.frontier_falls(frontier))
    assert text.startswith(span) if span else text == ""


def test_margin_finding_says_the_span_in_the_main_text_once_the_frontier_has_one():
    from adaptive_lora import paper
    assert paper.margin_finding(paper.main_frontier(frontier_cells())) == (
        "On uniform rank's frontier (Figure~\\ref{fig:frontier}), the $\\pm$0.01-nat margin spans uniform rank from "
        "0.794$\\times$ to 1.26$\\times$ its \\texttt{r8} parameters, so an arm called equivalent may still be worth "
        "anything in that range of uniform rank's parameters.")
    assert paper.margin_finding(paper.main_frontier(frontier_cells(budgets=(2, 8)))) == ""   # nothing above r8 yet
    assert paper.margin_conclusion(paper.main_frontier(frontier_cells())) == (
        "That margin spans uniform rank from 0.794$\\times$ to 1.26$\\times$ its \\texttt{r8} parameters.")
    assert paper.margin_conclusion(paper.main_frontier(frontier_cells(budgets=(2, 8)))) == ""


def test_lr_grid_table_marks_the_selected_lr():
    from adaptive_lora import stats, writers
    sel = stats.lr_selection(v2_cells())
    t = writers.lr_grid_table(sel)
    md = writers.table_markdown(t)
    # one row per lr, one column per strategy (an extension adds a row): 2 lrs, so every argmin is at an end
    assert "| peak lr | uniform | attn_heavy | ffn_heavy |" in md
    assert "| 0.0001 | 2.5000 | 2.3000* | 2.6000 |\n| 0.0003 | 2.4000* | 2.3500 | 2.5000* |\n" in md
    assert "| bracketed | no | no | no |" in md
    tex = writers.table_latex(t)
    assert "$3 \\times 10^{-4}$ & \\textbf{2.4000} & 2.3500 & \\textbf{2.5000} \\\\" in tex
    assert "peak lr & \\texttt{uniform} & \\texttt{attn\\_heavy}" in tex    # names as in the text
    # groups with their own lrs and arms: "--" where an arm did not run at a lr or is not in the group
    two = [dict(s, strategy="eva", curve=[(3e-5, 2.0), (1e-4, 2.1)], lr=3e-5, bracketed=False) for s in sel[:1]]
    md = writers.table_markdown(writers.lr_grid_table(sel[:1] + two, group=lambda s: s["strategy"]))
    assert "| 0.0001 | 2.5000 | – |\n| 0.0003 | 2.4000* | – |\n| bracketed | no | – |" in md
    assert "| 3e-05 | – | 2.0000* |\n| 0.0001 | – | 2.1000 |\n| bracketed | – | no |" in md



def test_replications_figure_puts_each_replication_beside_part_1(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import _plotting
    import fig_replications
    monkeypatch.setenv("ADAPTIVE_LORA_RESULTS", str(tmp_path / "results"))
    for exp in ("main", "replication_gsm8k"):
        (tmp_path / "results" / exp).mkdir(parents=True)
        for r in v2_cells():
            (tmp_path / "results" / exp / f"{r['run_id']}.json").write_text(json.dumps(r))
    out = tmp_path / "fig"
    figs = []
    monkeypatch.setattr(fig_replications, "save", lambda fig, o, stem: figs.append((fig, stem)))
    assert fig_replications.main(["--out", str(out)]) == 0 and [s for _, s in figs] == ["replications"]
    fig = figs[0][0]
    assert _plotting.small_texts(fig) == []
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["attn_heavy", "ffn_heavy"]               # one row per replicated strategy
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["part 1 (n = 3)", "B: GSM8K (n = 3)"]  # paired seeds
    points = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() == "o"]
    assert len(points) == 4                                   # 2 strategies x 2 experiments, side by side
    # attn_heavy is "better" (adjusted interval excludes 0): filled; ffn_heavy is not: hollow
    assert sorted(ln.get_markerfacecolor() == ln.get_color() for ln in points) == [False, False, True, True]
    _plotting.plt.close(fig)
    # part 1 alone: no replication figure (the main forest shows it)
    import shutil as sh
    sh.rmtree(tmp_path / "results" / "replication_gsm8k")
    figs.clear()
    assert fig_replications.main(["--out", str(out)]) == 0 and figs == []


def test_main_robustness_table_from_the_reports_statistics():
    from adaptive_lora import writers
    from adaptive_lora.report import protocol_v2_robustness
    rows = protocol_v2_robustness(v2_cells())
    assert [(r["strategy"], r["n_pairs"]) for r in rows] == [("attn_heavy", 3), ("ffn_heavy", 3)]
    tex = writers.table_latex(writers.robustness_table(rows, notes=False))
    assert "\\texttt{attn\\_heavy}" in tex and "\\texttt{ffn\\_heavy}" in tex


@pytest.mark.parametrize("verdicts, expected", [
    (["better", "equivalent", "equivalent"], "\\texttt{a} beats uniform rank; 2 were "
                                             "equivalent to it within $\\pm$\\EquivalenceMargin{} nats"),
    (["worse", "no detectable difference", "equivalent"],
     "\\texttt{a} lost to uniform rank; 1 was equivalent to it within $\\pm$\\EquivalenceMargin{} nats; "
     "1 was inconclusive (no detectable difference, not shown equivalent)"),
    (["equivalent", "worse", "better"], "\\texttt{c} beats uniform rank; \\texttt{b} lost to it; 1 was "
                                        "equivalent to it within $\\pm$\\EquivalenceMargin{} nats"),
    (["undetermined"], "no strategy could be tested")])
def test_main_conclusion_names_each_verdict(verdicts, expected):
    """The conclusion's clause follows the primary endpoint's verdicts, equivalence (amendment 2) included; the
    winners and losers by name, the rest counted."""
    from adaptive_lora import paper
    rows = [{"strategy": name, "verdict": v, "n_pairs": 4} for name, v in zip("abc", verdicts)]
    assert paper.main_conclusion(rows) == (
        f"with 4 paired seeds per strategy and Holm-adjusted intervals, {expected} " + "(Table~\\ref{tab:main-endpoint}).")


def test_verdict_clause_marks_a_detected_difference_inside_the_margin():
    """Better / worse take precedence over equivalent (amendment 2); an arm whose whole adjusted interval is inside
    +-0.01 nats is still named a winner, with its size said."""
    from adaptive_lora import paper
    rows = [dict(endpoint_row("a", "better", -0.004), adj_ci_low=-0.008, adj_ci_high=-0.001),
            dict(endpoint_row("b", "better", -0.02), adj_ci_low=-0.03, adj_ci_high=-0.01),
            dict(endpoint_row("c", "worse", 0.003), adj_ci_low=0.0005, adj_ci_high=0.0099)]
    assert paper.verdict_clause(rows) == ("\\texttt{a} (by less than the margin) and \\texttt{b} beat uniform rank; "
                                          "\\texttt{c} (by less than the margin) lost to it")


@pytest.mark.parametrize("extra, expected", [
    (2, "Stage~1 (28 cells, and 2 extending a learning-rate grid) is complete: on the development split "
        "uniform rank does best at a learning rate of $3 \\times 10^{-4}$ (bracketed), 1.5 times the pilot's."),
    (0, "Stage~1 (28 cells) is complete: on the development split uniform rank does best at a learning rate "
        "of $3 \\times 10^{-4}$ (bracketed), 1.5 times the pilot's.")])
def test_stage_one_sentence(extra, expected):
    from adaptive_lora import paper, stats
    assert paper.stage_one_sentence(stats.lr_selection(v2_cells()), 28, 2e-4, extra) == expected


STAGE_YAML = """name: main
defaults: {model: smollm2-135m, data: alpaca, budget: r8}
grid:
- {seed: [0, 1, 2], strategy: [uniform, attn_heavy], lr: [0.003]}
"""


@pytest.mark.parametrize("done, expected", [
    ([], "A has 0 of its 6 cells committed; b has 0 of its 1 cells committed."),
    ([(0, "uniform")], "A has 1 of its 6 cells committed; b has 0 of its 1 cells committed."),
    ([(s, n) for s in range(3) for n in ("uniform", "attn_heavy")],
     "A is complete (6 cells); b has 0 of its 1 cells committed."),
    ([(s, n) for s in range(3) for n in ("uniform", "attn_heavy")] + [(0, "ffn_heavy")],
     "A and b are complete (7 cells).")])
def test_stages_status_names_complete_stages_and_counts_the_others(tmp_path, done, expected):
    """The stages after stage 1: complete grids named with their cell count, the others with committed of planned;
    a grid not written yet is left out."""
    from adaptive_lora import paper
    from adaptive_lora.sweep import cells, load_grid
    (tmp_path / "a.yaml").write_text(STAGE_YAML)
    (tmp_path / "b.yaml").write_text(STAGE_YAML.replace("[0, 1, 2], strategy: [uniform, attn_heavy]",
                                                        "[0], strategy: [ffn_heavy]"))
    grids = {name: paper.grid_cells(tmp_path / f) for f, name in (("a.yaml", "a"), ("b.yaml", "b"),
                                                                       ("absent.yaml", "c"))}
    ids = {c.run_id for cs in grids.values() for c in cs if (c.seed, c.strategy) in done}
    assert len(ids) == len(done)
    assert paper.stages_status(ids, grids) == expected
    assert paper.stages_status(ids, {"c": []}) == ""
    if len(done) == 7:      # every grid complete, more than two of them: the count alone
        assert paper.stages_status(ids, dict(grids, d=grids["b"])) == "Every later grid is complete (8 cells)."


# ------------------------------------------------------------------ layout once the whole main grid has landed
FULL_GRID_ARMS = [  # (arm's strategy, extra config, true effect on the test loss in nats) at r8, stages 2-5
    ("uniform", {}, 0.0), ("linear_decay", {}, 0.001), ("linear_increase", {}, -0.001), ("attn_heavy", {}, -0.004),
    ("ffn_heavy", {}, 0.006), ("attention_only", {}, 0.02), ("ffn_only", {}, 0.01), ("weight_norm", {}, 0.002),
    ("spectral", {}, 0.0), ("activation", {}, -0.002), ("gradient", {}, -0.003),
    ("shuffled:gradient", {}, 0.001), ("eva", {}, -0.001), ("eva", {"eva_rho": 1.0}, 0.0), ("adalora", {}, 0.03),
    ("attn_heavy", {"scaling": "fixed-alpha"}, -0.002), ("ffn_heavy", {"scaling": "fixed-alpha"}, 0.004),
    ("gradient", {"scaling": "fixed-alpha"}, -0.001)]
FULL_REPLICATIONS = {"replication_long": ["uniform", "attn_heavy", "ffn_heavy", "gradient"],
                     "replication_gsm8k": ["uniform", "attn_heavy", "ffn_heavy", "gradient", "eva", "adalora"],
                     "replication_gemma": ["uniform", "attn_heavy", "ffn_heavy", "gradient"]}
FULL_REPLICATION_LRS = [("replication_long", ["uniform", "attn_heavy"], (1e-3, 9e-3)),   # beside 3e-3 (seeds 0-3)
                        ("replication_gsm8k", ["uniform", "attn_heavy", "adalora"], (3e-4, 1e-3, 1e-2)),
                        ("replication_gemma", ["uniform"], (3e-4, 1e-3, 1e-2))]
FULL_PRIOR = [("uniform", 0.0, None), ("attention_only", 0.03, "1843200"), ("attention_cproj", 0.01, "2856960"),
              ("ffn_in", 0.02, "2027520")]   # replication D: (placement, effect at r16, natural budget)


def full_grid_results(dst: Path) -> Path:
    """results/ as it will be once the main grid and the protocol-v2 replications have run: the committed pilot and
    default runs, and synthetic main / replication cells built from a committed main-grid cell (every field a real
    cell has, per-example losses shifted by the arm's effect): 18 arms x 4 seeds at r8 with stage-1 lr curves,
    uniform's frontier r1-r32 (with attn_heavy and eva at r2 and r32), three replications (A with uniform at
    r16 and r32) and the prior setting."""
    import random
    from adaptive_lora.paper import MAIN_GRID
    from adaptive_lora.sweep import cells, load_grid
    template = json.loads(next(iter(sorted((ROOT / "results" / "main").glob("*.json")))).read_text())
    # stage 1's cells carry the run_ids of the real grid (the generator checks stage 1 by run_id); the rest are
    # named here
    stage_one = {(c.strategy, c.lr, c.seed): c.run_id for c in cells(load_grid(MAIN_GRID))}
    for exp in ("pilot", "default"):
        shutil.copytree(ROOT / "results" / exp, dst / exp)
    rng = random.Random(0)

    def cell(exp, strategy, extra, seed, lr, effect, budget="r8"):
        r = json.loads(json.dumps(template))
        r["config"].update(strategy=strategy, seed=seed, lr=lr, budget=budget, experiment=exp, **extra)
        noise = rng.gauss(0, 0.002)
        shift = effect + noise + 0.02 * abs(math.log10(lr / 3e-3)) + 0.003 * seed
        r["eval_loss"] = template["eval_loss"] + shift
        if re.fullmatch(r"r\d+", budget):     # the frontier's points need their own parameter counts
            r["trainable_params"] = template["trainable_params"] * int(budget[1:]) // 8
        r["dev_loss"] = template["dev_loss"] + shift
        r["transfer_loss"] = template["transfer_loss"] + shift
        r["eval_example_losses"] = [[total * r["eval_loss"] / template["eval_loss"], tokens]   # [sum, tokens]
                                    for total, tokens in template["eval_example_losses"]]
        r["run_id"] = f"{strategy}-{'-'.join(f'{k}{v}' for k, v in extra.items())}-{budget}-{lr:g}-s{seed}"
        if exp == "main" and not extra and budget == "r8":
            r["run_id"] = stage_one.get((strategy, lr, seed), r["run_id"])
        (dst / exp).mkdir(parents=True, exist_ok=True)
        (dst / exp / f"{r['run_id'].replace(':', '_')}.json").write_text(json.dumps(r))

    for strategy, extra, effect in FULL_GRID_ARMS:
        for seed in range(4):
            cell("main", strategy, extra, seed, 3e-3, effect)
        if not extra and strategy in ("uniform", "attn_heavy", "ffn_heavy", "linear_increase", "gradient", "eva",
                                      "adalora"):
            for lr in (3e-4, 1e-3, 1e-2):
                cell("main", strategy, extra, 0, lr, effect)
    for rank, loss in ((1, 0.05), (2, 0.03), (4, 0.015), (16, -0.01), (32, -0.02)):
        for seed in range(3):
            cell("main", "uniform", {}, seed, 3e-3, loss, budget=f"r{rank}")
            for strategy in ("attn_heavy", "eva") if rank in (2, 32) else ():   # stage 4's other arms
                cell("main", strategy, {}, seed, 3e-3, loss + {s: e for s, x, e in FULL_GRID_ARMS if not x}[strategy],
                     budget=f"r{rank}")
    for exp, strategies in FULL_REPLICATIONS.items():
        for strategy in strategies:
            for seed in range(4):
                cell(exp, strategy, {}, seed, 3e-3, {s: e for s, x, e in FULL_GRID_ARMS if not x}[strategy])
    for rank, loss in ((16, -0.03), (32, -0.04)):      # replication A's uniform at more rank (amendment 8)
        for seed in range(3):
            cell("replication_long", "uniform", {}, seed, 3e-3, loss, budget=f"r{rank}")
    for exp, strategies, lrs in FULL_REPLICATION_LRS:   # each replication's own lr selection (seed 0)
        for strategy in strategies:
            for lr in lrs:
                cell(exp, strategy, {}, 0, lr, {s: e for s, x, e in FULL_GRID_ARMS if not x}[strategy])
    for strategy, effect, natural in FULL_PRIOR:          # replication D: matched (r16) and natural budgets
        for seed in range(5):
            for budget, extra in (("r16", 0.0), (natural, 0.01)):
                if budget:
                    cell("replication_prior", strategy, {"split": "prior"}, seed, 2e-4, effect + extra, budget)
    return dst


@pytest.fixture(scope="module")
def built_full_grid(tmp_path_factory) -> Path:
    """The paper built from ``full_grid_results``: figures drawn by the fig_*.py scripts, generated files by the
    generator, then latexmk, all in a copy of paper/."""
    need(*LATEX_TOOLS)
    tmp = tmp_path_factory.mktemp("full")
    results = full_grid_results(tmp / "results")
    d = copy_sources(tmp / "paper")
    env = dict(os.environ, ADAPTIVE_LORA_RESULTS=str(results))
    for script, args in (("fig_lr_curves.py", ["--exp", "main"]), ("fig_main_forest.py", ["--exp", "main"]),
                         ("fig_frontier.py", ["--exp", "main"]), ("fig_replications.py", [])):
        r = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--out", str(d / "figures"), *args],
                           env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
    numbers.write(numbers.build(results), d / "generated")
    return build_pdf(d)


def test_full_main_grid_fits_the_page_limit_and_builds_cleanly(built_full_grid):
    """Once every cell has landed, the main text (with the primary-endpoint forest and the replications figure)
    still ends by page 9, nothing overflows and every reference resolves."""
    d = built_full_grid
    log = (d / "build" / "main.log").read_text(errors="replace")
    assert log_problems(log) == [] and overfull_boxes(log) == []
    pages = label_pages((d / "build" / "main.aux").read_text(errors="replace"))
    assert pages["fig:main-forest"] <= MAX_MAIN_TEXT_PAGES and pages["fig:replications"] <= MAX_MAIN_TEXT_PAGES
    assert pages["paper@end-of-main-text"] <= MAX_MAIN_TEXT_PAGES, (
        f"with the whole main grid the main text ends on page {pages['paper@end-of-main-text']}")
    assert pages["fig:lr-curves"] > pages["paper@end-of-main-text"]     # stage 1's figure made way for the forest
    assert pages["tab:replication-lr"] > pages["paper@end-of-main-text"]  # the replications' lr choices: appendix
    lrs = (d / "generated" / "replication_lr.tex").read_text()
    chosen = numbers.read_macros((d / "generated" / "numbers.tex").read_text())["ReplicationLrChosen"]
    assert "A, \\texttt{uniform}: $3 \\times 10^{-3}$" in chosen and "C, \\texttt{uniform}: $3 \\times 10^{-3}$" in chosen
    assert all(f"\\textit{{{x}}}" in lrs for x in ("A (500 steps)", "B (GSM8K)", "C (Gemma-3-270M)"))
    effects = (d / "generated" / "replication_effects.tex").read_text()
    assert all(f"\\textit{{{x}}}" in effects for x in ("A (500 steps)", "B (GSM8K)", "C (Gemma-3-270M)"))
    assert pages["tab:replication-effects"] > pages["paper@end-of-main-text"]
    endpoint, secondary = ((d / "generated" / f).read_text() for f in ("main_endpoint_table.tex",
                                                                         "main_secondary_table.tex"))
    assert "\\texttt{attn\\_heavy}" in endpoint and "primary, scaling ablation endpoint" in endpoint
    assert "secondary endpoint}" in secondary and "transfer loss endpoint" in secondary
    assert "secondary endpoint}" not in endpoint and "primary" not in secondary
    assert "attn\\_heavy[fixed-alpha]" in (d / "generated" / "main_robustness.tex").read_text()
    prior = (d / "generated" / "prior_setting_table.tex").read_text()
    assert "\\texttt{attention\\_cproj} & 2{,}856{,}960 & 5 &" in prior and "natural budgets, 500 held-out" in prior
    said = numbers.read_macros((d / "generated" / "numbers.tex").read_text())["PriorReplicationSentence"]
    assert "at their natural budgets" in said and "the order agrees" in said
    assert numbers.read_macros((d / "generated" / "numbers.tex").read_text())["PriorRate"] == " ($2 \\times 10^{-4}$)"
    frontier = numbers.read_macros((d / "generated" / "numbers.tex").read_text())["MainFrontierSentence"]
    assert frontier.startswith("Over the 6 budgets with 2 or more seeds, uniform rank's test loss goes from")
    assert "$\\times$" in frontier and "fig:frontier" in pages     # a multiplier read off it; the figure is placed


def endpoint_row(strategy, verdict, diff=0.0, lr=3e-3, ref_lr=3e-3, endpoint="primary", n=4):
    return {"strategy": strategy, "verdict": verdict, "diff_mean": diff, "lr": lr, "ref_lr": ref_lr,
            "endpoint": endpoint, "n_pairs": n, "diffs": [diff] * n}   # an endpoint row's per-seed differences


@pytest.mark.parametrize("rows, expected", [
    ([("a", "equivalent"), ("b", "worse"), ("c", "no detectable difference"), ("eva", "better"),
      ("eva[rho1]", "better"), ("adalora", "worse")],
     "Of the 3 arms that only move rank and keep LoRA's default initialisation, none beat uniform rank: 1 was "
     "equivalent to it, \\texttt{b} lost to it, and 1 was inconclusive."),
    ([("a", "better"), ("b", "equivalent")],
     "Of the 2 arms that only move rank and keep LoRA's default initialisation, \\texttt{a} beats uniform rank: 1 "
     "was equivalent to it."),
    ([("eva", "better")], "")])
def test_allocation_finding_leaves_the_baselines_out(rows, expected):
    from adaptive_lora import paper
    assert paper.allocation_finding([endpoint_row(s, v) for s, v in rows]) == expected


@pytest.mark.parametrize("verdict, n, expected", [
    ("equivalent", 4, "equivalent within $\\pm$\\EquivalenceMargin{} nats: on this evidence EVA's gain comes from its "
                      "data-driven initialisation at its own learning rate, not from where it puts rank."),
    ("no detectable difference", 4, "which does not separate the two."),
    ("equivalent", 1, None),
    # better, but the whole interval inside the margin: the size is read (eva[rho1] -0.0196 of eva's -0.02: 98 %)
    ("better", 4, "better, but by less than the $\\pm$\\EquivalenceMargin{}-nat margin; \\texttt{eva[rho1]} alone "
                  "has 98\\,\\% of \\texttt{eva}'s gain over uniform rank.")])
def test_init_finding_reads_the_planned_contrast(verdict, n, expected):
    from adaptive_lora import paper
    row = {"strategy": "eva", "reference": "eva[rho1]", "diff_mean": -0.0003, "ci_low": -0.0008, "ci_high": 0.0002,
           "n_pairs": n, "verdict": verdict}
    if verdict == "better":
        row["ci_high"] = -0.0001
    text = paper.init_finding(row, [endpoint_row("eva", "better", -0.02), endpoint_row("eva[rho1]", "better", -0.0196)])
    if expected is None:
        assert text == ""
    else:
        assert text == ("The planned contrast \\texttt{eva} minus \\texttt{eva[rho1]} (the same initialisation without "
                        "redistribution), paired by seed, is $-0.0003$ nats (95\\,\\% CI $[-0.0008, "
                        f"{'-0.0001' if verdict == 'better' else '+0.0002'}]$, $n = 4$; "
                        "one contrast, unadjusted, written into the plan after an interim look at the primary endpoint), " + expected)


def prior_row(strategy, comparison, verdict, diff, n=5, endpoint="transfer_loss"):
    return {**endpoint_row(strategy, verdict, diff, endpoint=endpoint, n=n), "comparison": comparison}


@pytest.mark.parametrize("natural, matched, expected", [
    ({"attention_cproj": ("worse", 0.02), "ffn_in": ("worse", 0.03), "attention_only": ("worse", 0.04)},
     {"ffn_in": ("worse", 0.01)},
     "holds at the natural budgets, and at the matched budget too, so it is not only a matter of budget."),
    ({"attention_cproj": ("worse", 0.03), "ffn_in": ("no detectable difference", 0.01)},
     {"ffn_in": ("equivalent", 0.0)},
     "does not hold at the natural budgets for \\texttt{ffn\\_in}; at the matched budget it does not hold for "
     "\\texttt{ffn\\_in} (2 of its 3 placements tested so far).")])
def test_prior_finding_tests_the_prior_studys_conclusions(natural, matched, expected):
    """Replication D in words: its first conclusion (all modules beat every subset) follows the adjusted verdicts
    at the natural and matched budgets; its second (attention above FFN) is an order of means, said to be one."""
    from adaptive_lora import paper
    rows = [prior_row(s, "natural", v, d) for s, (v, d) in natural.items()] + \
        [prior_row(s, "matched", v, d) for s, (v, d) in matched.items()] + \
        [prior_row("ffn_in", "natural", "better", -1.0, endpoint="eval_loss")]    # the prior 20: not the primary
    text = paper.prior_finding(rows)
    assert text.startswith("On the \\DataAlpacaEval{} held-out examples, with 5 paired seeds")
    assert "The prior study's first conclusion, that adapting all modules beats adapting a subset of them, " \
        + expected in text
    a, f = natural["attention_cproj"][1], natural["ffn_in"][1]
    assert f"the order {'agrees' if a < f else 'is reversed'} (means, not a planned test)." in text


def test_lr_finding_names_the_arms_whose_verdict_the_learning_rate_changes():
    from adaptive_lora import paper
    primary = [endpoint_row("eva", "better", -0.0209, lr=3e-4), endpoint_row("a", "equivalent", 0.001),
               endpoint_row("b", "no detectable difference", 0.002, lr=1e-3)]
    secondary = [endpoint_row("eva", "worse", 0.0633, endpoint="secondary"),
                 endpoint_row("a", "equivalent", 0.001, endpoint="secondary"),
                 endpoint_row("b", "no detectable difference", 0.004, endpoint="secondary"),
                 endpoint_row("eva", "worse", 0.05, endpoint="primary (seeds 0-3)")]
    assert paper.lr_finding(primary, secondary) == (
        "The learning rate alone changes a verdict (secondary endpoint, Table~\\ref{tab:main-secondary}; each arm at its "
        "own learning rate, then at uniform's, $3 \\times 10^{-3}$): \\texttt{eva} from $-0.0209$ (better, "
        "$3 \\times 10^{-4}$) to $+0.0633$ (worse, reversed).")
    # worse -> inconclusive is a change but no reversal: named, without "reversed"
    ada = [endpoint_row("adalora", "worse", 0.0112, lr=1e-2)], [endpoint_row("adalora", "no detectable difference",
                                                                               0.0212, endpoint="secondary")]
    assert paper.lr_finding(*ada) == (
        "The learning rate alone changes a verdict (secondary endpoint, Table~\\ref{tab:main-secondary}; each arm at its "
        "own learning rate, then at uniform's, $3 \\times 10^{-3}$): \\texttt{adalora} from $+0.0112$ (worse, "
        "$10^{-2}$) to $+0.0212$ (inconclusive).")
    # uniform's lr differing between arms (not in this grid): each part says its own
    two = [endpoint_row("a", "worse", 0.02, lr=1e-2), endpoint_row("b", "better", -0.02, lr=1e-3)], [
        endpoint_row("a", "no detectable difference", 0.01, endpoint="secondary"),
        endpoint_row("b", "no detectable difference", 0.0, ref_lr=1e-3, lr=1e-3, endpoint="secondary")]
    assert paper.lr_finding(*two).endswith(
        "then at uniform's): \\texttt{a} from $+0.0200$ (worse, $10^{-2}$) to $+0.0100$ (inconclusive, "
        "$3 \\times 10^{-3}$); \\texttt{b} from $-0.0200$ (better, $10^{-3}$) to $+0.0000$ (inconclusive, $10^{-3}$).")
    assert paper.lr_finding(primary[1:], secondary[1:3]) == (
        "Run at uniform's learning rate instead (the secondary endpoint, Table~\\ref{tab:main-secondary}), no arm's "
        "verdict changes.")
    assert paper.lr_finding(primary, []) == ""


def seeded(row, n):
    return dict(row, seeds=list(range(n)), n_pairs=n)


@pytest.mark.parametrize("planned, expected", [
    # seeds 0-3 alone already inconclusive: the change from n = 8 is one of n, not of lr -> no flip
    ("no detectable difference", "Run at uniform's learning rate instead (the secondary endpoint, "
     "Table~\\ref{tab:main-secondary}), no arm's verdict changes."),
    # seeds 0-3 alone worse: the lr changes the verdict, read against the seeds 0-3 row (its diff, not n = 8's)
    ("worse", "The learning rate alone changes a verdict (secondary endpoint, Table~\\ref{tab:main-secondary}; each "
     "arm at its own learning rate, then at uniform's, $3 \\times 10^{-3}$, over the same 4 seeds): \\texttt{adalora} "
     "from $+0.0114$ (worse, $10^{-2}$) to $+0.0212$ (inconclusive).")])
def test_lr_finding_compares_the_endpoints_over_the_same_seeds(planned, expected):
    from adaptive_lora import paper
    primary = [seeded(endpoint_row("adalora", "worse", 0.0109, lr=1e-2), 8)]
    secondary = [seeded(endpoint_row("adalora", "no detectable difference", 0.0212, endpoint="secondary"), 4),
                 seeded(endpoint_row("adalora", planned, 0.0114, lr=1e-2, endpoint="primary (seeds 0-3)"), 4)]
    assert paper.lr_finding(primary, secondary) == expected
    # no primary row over the secondary's seeds: left out rather than compared across n
    assert paper.lr_flips(primary, secondary[:1]) == []


def test_abstract_findings_and_planned_seeds(tmp_path):
    from adaptive_lora import paper
    contrast = {"strategy": "eva", "reference": "eva[rho1]", "diff_mean": -0.0003, "n_pairs": 4,
                "verdict": "equivalent"}
    primary = [endpoint_row("eva", "better", -0.0209, lr=3e-4)]
    secondary = [endpoint_row("eva", "worse", 0.0633, endpoint="secondary")]
    assert paper.abstract_findings(primary, secondary, contrast) == (
        "\\texttt{eva}'s gain is the same without its rank redistribution (\\texttt{eva[rho1]}; difference $-0.0003$ "
        "nats, equivalent), so on this evidence it comes from its initialisation, not from its allocation. At "
        "uniform's learning rate \\texttt{eva} would be worse ($+0.0633$ nats, 4 seeds): one shared learning rate "
        "would have misled.")
    # several arms change: grouped by the verdict they would get at uniform's learning rate
    flips = ([endpoint_row(s, "better", -0.01, lr=3e-4) for s in ("eva", "adalora", "attn_heavy")],
             [endpoint_row("eva", "worse", 0.06, endpoint="secondary"),
              endpoint_row("adalora", "no detectable difference", 0.02, endpoint="secondary"),
              endpoint_row("attn_heavy", "no detectable difference", 0.005, endpoint="secondary")])
    assert paper.abstract_findings(*flips, None) == (
        "At uniform's learning rate the verdict would change (worse: \\texttt{eva}; inconclusive: \\texttt{adalora}, "
        "\\texttt{attn\\_heavy}): one shared learning rate would have misled.")
    assert paper.abstract_findings(primary, [], dict(contrast, verdict="no detectable difference")) == ""
    # detected but inside the margin: its size, and the initialisation's share of eva's gain (-0.0196 / -0.0209)
    small = dict(contrast, verdict="better", diff_mean=-0.0004, ci_low=-0.0007, ci_high=-0.0001)
    assert paper.abstract_findings(primary + [endpoint_row("eva[rho1]", "better", -0.0196, lr=3e-4)], [], small) == (
        "\\texttt{eva}'s rank redistribution gains 0.0004 nats over its initialisation alone "
        "(\\texttt{eva[rho1]}), detectable but inside the margin (a contrast added after an interim look): "
        "94\\,\\% of its gain comes from the initialisation.")
    # an interval reaching beyond the margin is no "negligible" difference: no sentence
    assert paper.abstract_findings(primary, [], dict(small, ci_low=-0.012)) == ""


def test_transfer_finding_compares_arms_below_uniforms_learning_rate_with_the_rest():
    from adaptive_lora import paper
    rows = [endpoint_row("a", "no detectable difference", -0.06, lr=1e-3, endpoint="transfer loss"),
            endpoint_row("b", "worse", 0.02, endpoint="transfer loss"),
            endpoint_row("c", "no detectable difference", 0.0, endpoint="transfer loss"),
            endpoint_row("d", "undetermined", 0.0, endpoint="transfer loss", n=1)]
    assert paper.transfer_finding(rows) == (
        "On the \\MainTransferExamples{} GSM8K test examples (transfer, a secondary metric; the transfer rows of "
        "Table~\\ref{tab:main-secondary}), each arm at its own learning rate, \\texttt{b} lost to uniform rank; \\texttt{a} and "
        "\\texttt{c} were inconclusive (no detectable difference, not shown equivalent). The arms trained below "
        "uniform's learning rate (\\texttt{a}) differ from it by $-0.0600$ nats on average, those at its rate by "
        "$+0.0100$ (means, not a planned test); a lower learning rate moves the weights less, so these differences may "
        "be the learning rate's more than the allocation's.")
    flipped = [dict(rows[0], diff_mean=0.06)] + rows[1:]     # the lower-lr arm lost more: no such reading
    assert paper.transfer_finding(flipped).endswith("those at its rate by $+0.0100$ (means, not a planned test).")
    # an arm above uniform's lr that loses as little as those below: the lr reading is not offered
    above = rows + [endpoint_row("e", "better", -0.05, lr=1e-2, endpoint="transfer loss")]
    assert paper.transfer_finding(above).endswith(
        "those at its rate by $+0.0100$, and \\texttt{e}, above it, by $-0.0500$ (means, not a planned test).")
    assert paper.transfer_finding(rows[3:]) == ""


def test_stage_five_best_is_read_from_the_post_grid(tmp_path):
    from adaptive_lora import paper
    grid = tmp_path / "main_post.yaml"
    assert paper.stage_five_best(paper.grid_cells(grid)) == "not yet chosen"
    grid.write_text("name: main\ndefaults: {model: smollm2-135m, data: alpaca, budget: r8}\n"
                    "grid:\n- {seed: [0], strategy: [attn_heavy, ffn_heavy, gradient], lr: [0.001], "
                    "scaling: [fixed-alpha]}\n- {seed: [0], strategy: [eva], lr: [0.0003]}\n")
    assert paper.stage_five_best(paper.grid_cells(grid)) == "\\texttt{gradient}"


@pytest.mark.parametrize("part1, rows, expected", [
    ([("a", "better"), ("b", "worse"), ("c", "no detectable difference"), ("d", "equivalent")],
     [("a", "better"), ("b", "better"), ("c", "no detectable difference"), ("d", "no detectable difference"),
      ("e", "worse")],
     ("kept 2 of 4 (\\texttt{a} and \\texttt{c}) and reversed \\texttt{b} (worse in part~1); \\texttt{d} was "
      "inconclusive (part~1: equivalent)")),
    ([("a", "better")], [("a", "worse")], "kept 0 of 1 and reversed \\texttt{a} (better in part~1)"),
    ([("a", "no detectable difference")], [("a", "worse")], "kept 0 of 1; \\texttt{a} was worse (part~1: inconclusive)"),
    ([("a", "better")], [("b", "better")], "")])
def test_agreement_counts_the_verdicts_a_replication_kept(part1, rows, expected):
    """Kept: the same verdict (inconclusive included); reversed: better <-> worse; other changes named; arms part 1
    did not test are left out."""
    from adaptive_lora import paper
    assert paper.agreement([endpoint_row(s, v) for s, v in part1], [endpoint_row(s, v) for s, v in rows]) == expected


def test_agreement_says_when_a_reversal_is_smaller_than_the_margin():
    from adaptive_lora import paper
    small = dict(endpoint_row("a", "worse", 0.005), adj_ci_low=0.003, adj_ci_high=0.007)
    assert paper.agreement([endpoint_row("a", "better")], [small]) == (
        "kept 0 of 1 and reversed \\texttt{a} (better in part~1; now worse by less than the margin)")
    assert paper.agreement([endpoint_row("a", "better")], [dict(small, adj_ci_high=0.012)]) == (
        "kept 0 of 1 and reversed \\texttt{a} (better in part~1)")
    assert paper.agreement([endpoint_row("a", "equivalent")], [small]) == (
        "kept 0 of 1; \\texttt{a} was worse by less than the margin (part~1: equivalent)")


@pytest.mark.parametrize("natural, matched, expected", [
    ({"a": "worse", "b": "worse"}, {"a": "better", "b": "worse"},
     "holds at the subsets' natural, smaller budgets, but at a matched budget \\texttt{a} beat all modules."),
    ({"a": "worse"}, {"a": "worse"}, "holds at the subsets' natural, smaller budgets and at a matched budget too."),
    ({"a": "worse", "b": "equivalent"}, {"a": "no detectable difference"},
     "does not hold even at the natural budgets; at a matched budget no subset beat all modules."),
    ({"a": "worse"}, {}, None)])
def test_prior_conclusion_reads_the_budget_effect(natural, matched, expected):
    from adaptive_lora import paper
    rows = [prior_row(s, "natural", v, 0.01) for s, v in natural.items()] + \
        [prior_row(s, "matched", v, 0.01) for s, v in matched.items()] + \
        [prior_row("a", "matched", "better", -1.0, endpoint="eval_loss")]    # the prior 20: not read
    text = paper.prior_conclusion(rows)
    assert text == ("" if expected is None else "In its setting (replication~D), on SmolLM2, its conclusion that adapting "
                    "all modules beats adapting a subset of them " + expected)
    described = paper.prior_conclusion(rows, {"a": "placement A"})
    assert described == text.replace("\\texttt{a}", "placement A").replace(" (replication~D)", "")


def test_prior_conclusion_says_when_a_subset_won_by_less_than_the_margin():
    from adaptive_lora import paper
    small = dict(prior_row("a", "matched", "better", -0.004), adj_ci_low=-0.007, adj_ci_high=-0.001)
    rows = [prior_row("a", "natural", "worse", 0.02), small, prior_row("b", "matched", "better", -0.02)]
    assert paper.prior_conclusion(rows, {"a": "placement A"}).endswith(
        "at a matched budget placement A (by less than the margin) and \\texttt{b} beat all modules.")
    assert paper.prior_conclusion([rows[0], dict(small, adj_ci_low=-0.012)]).endswith(
        "at a matched budget \\texttt{a} beat all modules.")


def test_replications_sentence_counts_the_verdicts_each_kept_and_names_what_is_missing(tmp_path, monkeypatch):
    from adaptive_lora import paper, report
    blocks = [(report.REPLICATIONS[0][1], [endpoint_row("attn_heavy", "better"), endpoint_row("ffn_heavy", "worse"),
                                           endpoint_row("attention_only", "worse")]),
              (report.REPLICATIONS[1][1], [endpoint_row("attn_heavy", "equivalent", n=3),
                                           endpoint_row("ffn_heavy", "worse")]),
              (report.REPLICATIONS[4][1], [endpoint_row("attention_cproj", "better", n=5),
                                           endpoint_row("attention_only", "better", n=5)])]
    monkeypatch.setattr(report, "replication_effects", lambda exps: blocks)
    gemma = [r for r in v2_cells() if r["config"]["strategy"] == "uniform" and r["config"]["seed"] == 0]
    exps = {"replication_long": [{"eval_loss": 1.0}] * 6, "replication_gsm8k": [{"eval_loss": 1.0}],
            "replication_prior": [{"eval_loss": 1.0}] * 10, "replication_gemma": gemma}
    macros = paper.replications(exps)
    assert macros["ReplicationSentence"] == (
        "Of part~1's verdicts on the arms it repeats, A (3 to 4 paired seeds, interim) kept 1 of 2 (\\texttt{ffn\\_heavy}); "
        "\\texttt{attn\\_heavy} was equivalent (part~1: better). In D (5 paired seeds, matched budget), \\texttt{attention\\_cproj} and "
        "\\texttt{attention\\_only} beat all modules. B (1 cell) and C (2 "
        "cells; learning rates: Appendix~\\ref{app:replication-lr}) have no arm with two paired seeds yet.")
    assert macros["ReplicationConclusion"] == (
        "Of part~1's verdicts, replication A (interim) kept 1 of 2.")   # its grid's cells have not all landed
    assert macros["ReplicationAbstract"] == "Repeated with 500 steps (interim), 1 of 2 verdicts held."   # D is not part 1's
    monkeypatch.setattr(report, "replication_effects", lambda exps: [])
    macros = paper.replications({})
    assert macros["ReplicationSentence"].startswith("No replication has a committed cell yet")
    assert macros["ReplicationConclusion"] == macros["ReplicationAbstract"] == ""


def test_replications_sentence_gives_each_replication_its_own_sentence(monkeypatch):
    # each replication's clause carries its own "and" / ";": joined into one sentence they ran on
    from adaptive_lora import paper, report
    blocks = [(report.REPLICATIONS[0][1], [endpoint_row("a", "better"), endpoint_row("b", "equivalent")]),
              (report.REPLICATIONS[2][1], [endpoint_row("a", "better", n=2), endpoint_row("b", "no detectable difference", n=2)]),
              (report.REPLICATIONS[3][1], [endpoint_row("a", "worse", n=4), endpoint_row("b", "equivalent", n=4)])]
    monkeypatch.setattr(report, "replication_effects", lambda exps: blocks)
    macros = paper.replications({})
    assert macros["ReplicationSentence"] == (
        "Of part~1's verdicts on the arms it repeats, B (2 paired seeds, interim) kept 1 of 2 (\\texttt{a}); \\texttt{b} was "
        "inconclusive (part~1: equivalent). C (4 paired seeds, interim) kept 1 of 2 (\\texttt{b}) and reversed \\texttt{a} "
        "(better in part~1). A and D have no committed cell yet.")
    assert macros["ReplicationConclusion"] == (
        "Of part~1's verdicts, replications B (interim) kept 1 of 2; C (interim) kept 1 of 2 and reversed \\texttt{a} (better in part~1).")


def test_replications_sentence_names_the_replications_without_cells(tmp_path, monkeypatch):
    from adaptive_lora import paper, report
    monkeypatch.setattr(report, "replication_effects", lambda exps: [])
    two = {"replication_gsm8k": [{"eval_loss": 1.0}] * 2}
    assert paper.replications(two)["ReplicationSentence"] == (
        "B (2 cells) has no arm with two paired seeds yet; A, C, and D have no cell yet.")
    assert paper.replications({"replication_gemma": [{"eval_loss": 1.0}]})["ReplicationSentence"] == (
        "C (1 cell) has no arm with two paired seeds yet; A, B, and D have no cell yet.")


def small_worse(strategy):
    """A 'worse' endpoint row whose whole adjusted interval lies inside the equivalence margin."""
    return dict(endpoint_row(strategy, "worse", 0.005), adj_ci_low=0.003, adj_ci_high=0.007)


@pytest.mark.parametrize("repeated, expected", [
    ([], ""),
    ([("GSM8K", [endpoint_row("zzz", "better")])], ""),                       # no arm in common with part 1
    ([("Gemma-3-270M", [endpoint_row("a", "equivalent"), endpoint_row("b", "worse"),
                        endpoint_row("c", "better")])],
     "Repeated with Gemma-3-270M, 2 of 3 verdicts held; \\texttt{b}'s reversed."),
    # a reversal whose adjusted interval lies inside the equivalence margin says so
    ([("Gemma-3-270M", [dict(endpoint_row("b", "worse", 0.005), adj_ci_low=0.003, adj_ci_high=0.007)])],
     "Repeated with Gemma-3-270M, 0 of 1 verdicts held; \\texttt{b}'s reversed, by less than the margin."),
    # counts in the names' order; a reversal named with the replications it occurred in
    ([("GSM8K", [endpoint_row("a", "worse"), endpoint_row("c", "better")]),
      ("Gemma-3-270M", [endpoint_row("b", "worse"), endpoint_row("d", "worse")])],
     "Repeated with GSM8K and Gemma-3-270M, 1 of 2 and 0 of 2 verdicts held; \\texttt{b}'s and \\texttt{d}'s "
     "reversed with Gemma-3-270M."),
    # the same reversal in every replication is said once
    ([("GSM8K", [endpoint_row("a", "equivalent"), small_worse("b")], True),    # interim: its count says so
      ("Gemma-3-270M", [endpoint_row("c", "better"), small_worse("b")])],
     "Repeated with GSM8K (interim) and Gemma-3-270M, 1 of 2 and 1 of 2 verdicts held; \\texttt{b}'s reversed in "
     "both, by less than the margin."),
    ([("500 steps", [endpoint_row("a", "equivalent")]), ("GSM8K", [small_worse("b")]),
      ("Gemma-3-270M", [small_worse("b"), endpoint_row("c", "worse")])],
     "Repeated with 500 steps, GSM8K, and Gemma-3-270M, 1 of 1, 0 of 1, and 0 of 2 verdicts held; \\texttt{b}'s "
     "reversed with GSM8K, by less than the margin; \\texttt{b}'s (by less than the margin) and \\texttt{c}'s "
     "reversed with Gemma-3-270M."),
])
def test_replication_abstract_counts_kept_and_reversed_verdicts(repeated, expected):
    from adaptive_lora import paper
    part1 = [endpoint_row("a", "equivalent"), endpoint_row("b", "better"), endpoint_row("c", "better"),
             endpoint_row("d", "better")]
    assert paper.replication_abstract(part1, repeated) == expected


@pytest.mark.parametrize("rows, expected", [
    ([("B: GSM8K", 2), ("B: GSM8K", 3)], "B: GSM8K (n = 2\u20133)"),
    ([("part 1 (SmolLM2, Alpaca, 125 steps)", 8)], "part 1 (n = 8)"),
    ([("D: prior setting (matched budget)", 5)], "D: prior setting vs all modules (n = 5)")])
def test_replications_legend_gives_paired_seeds_and_ds_reference(rows, expected):
    import fig_replications
    assert fig_replications.legend_label(rows[0][0], [{"n_pairs": n} for _, n in rows]) == expected


def test_replication_effects_table_groups_a_to_c_in_the_texts_words():
    """One group per replication A-C (D and part 1 have their own tables), Holm within each, and the verdict word
    the text uses ("inconclusive", not the plan's "no detectable difference")."""
    from adaptive_lora import paper
    gsm = [dict(r, config=dict(r["config"], data="gsm8k")) for r in v2_cells()]
    gemma = [dict(r, config=dict(r["config"], model="gemma3-270m")) for r in v2_cells()]
    table = paper.replication_effects_table({"main": v2_cells(), "replication_gsm8k": gsm,
                                             "replication_gemma": gemma, "replication_prior": v2_cells()})
    assert "\\textit{B (GSM8K)}" in table and "\\textit{C (Gemma-3-270M)}" in table
    assert table.count("\\textit{") == 2 and table.count("\\texttt{attn") == 2     # neither part 1 nor D
    assert "\\texttt{attn\\_heavy} & $10^{-4}$ & 3 & $-$0.1000" in table and "& better \\\\" in table
    assert "& inconclusive \\\\" in table and "no detectable difference" not in table
    assert paper.replication_effects_table({"main": v2_cells()}) == (
        "% no replication has a strategy with two paired seeds yet\n")


def test_ablation_finding_reads_stage_fives_own_family():
    from adaptive_lora import paper
    rows = [endpoint_row("eva[fixed-alpha]", "better", -0.02, endpoint="primary, scaling ablation"),
            endpoint_row("ffn_heavy[fixed-alpha]", "equivalent", endpoint="primary, scaling ablation"),
            endpoint_row("ffn_heavy[fixed-alpha]", "worse", endpoint="secondary, scaling ablation"),   # not read
            endpoint_row("gradient", "worse")]                                                      # primary family
    assert paper.ablation_finding(rows) == (
        "With a fixed $\\alpha$ (4 paired seeds, Holm within the ablation), \\texttt{eva[fixed-alpha]} beats uniform "
        "rank; \\texttt{ffn\\_heavy[fixed-alpha]} was equivalent to it within $\\pm$\\EquivalenceMargin{} nats.")
    assert paper.ablation_finding(rows[3:]) == ""


def test_robustness_finding_names_where_the_checks_disagree_with_the_paired_verdicts():
    from adaptive_lora import paper

    def rob(strategy, diff, p, lo, hi):
        return {"strategy": strategy, "endpoint": "primary", "anova_diff": diff, "anova_p_holm": p,
                "boot_ci_low": lo, "boot_ci_high": hi}
    primary = [endpoint_row("a", "better", -0.02), endpoint_row("b", "equivalent"), endpoint_row("c", "equivalent"),
               endpoint_row("d", "no detectable difference")]
    robust = [rob("a", -0.02, 1e-5, -0.03, -0.01), rob("b", 0.004, 0.017, 0.002, 0.006),
              rob("c", 0.001, 1.0, 0.0002, 0.002), rob("d", -0.001, 0.5, -0.002, 0.001),
              dict(rob("a", 0.01, 1e-5, 0.01, 0.02), endpoint="primary, scaling ablation")]   # another family
    assert paper.robustness_finding(robust, primary) == (
        "The two-way model over strategies and seeds calls \\texttt{b} worse ($p_{\\mathrm{Holm}} = 0.02$) where the "
        "paired test says equivalent, and agrees on the other 3 arms; the bootstrap over test examples, which leaves "
        "training noise out, excludes zero for 2 arms the paired test does not call better or worse "
        "(Table~\\ref{tab:main-robustness}).")
    agree = [robust[0], rob("b", 0.004, 0.3, -0.001, 0.006)]
    assert paper.robustness_finding(agree, primary[:2]) == (
        "The two-way model over strategies and seeds agrees with every paired verdict; the bootstrap over test "
        "examples excludes zero only where the paired test decides (Table~\\ref{tab:main-robustness}).")
    assert paper.robustness_finding([], primary) == ""


@pytest.mark.parametrize("part1, prior, expected", [
    ([("attention_only", "worse"), ("a", "better")], [("attention_only", "better"), ("a", "better")],
     "; there \\texttt{attention\\_only} beat all modules, while in part~1 it lost to uniform rank (in neither at a "
     "learning rate tuned for it)"),
    ([("a", "better"), ("b", "worse")], [("a", "worse"), ("b", "better")],
     "; there \\texttt{a} lost to all modules, while in part~1 it beat uniform rank and \\texttt{b} beat all "
     "modules, while in part~1 it lost to uniform rank (in neither at a learning rate tuned for it)"),
    ([("a", "worse")], [("a", "no detectable difference")], ""),     # not opposite: nothing said
    ([("a", "worse")], [], "")])
def test_placement_contrast_names_opposite_verdicts_of_part_1_and_d(part1, prior, expected):
    from adaptive_lora import paper
    assert paper.placement_contrast([endpoint_row(s, v) for s, v in part1],
                                    [endpoint_row(s, v) for s, v in prior]) == expected
    if expected:   # an arm stage 1 tuned: only D's learning rate is untuned
        assert paper.placement_contrast([endpoint_row(s, v) for s, v in part1], [endpoint_row(s, v) for s, v in prior],
                                        {s for s, _ in part1}).endswith("(in D at the prior study's one learning rate)")


def test_pending_reads_the_experiments_grids(tmp_path):
    """A replication is interim while a cell of any of its grids (experiments/<exp>*.yaml) has no result."""
    from adaptive_lora import paper
    from adaptive_lora.sweep import cells, load_grid
    grid = paper.ROOT / "experiments" / "replication_gemma_r8.yaml"
    shutil.copy(grid, tmp_path / grid.name)
    ids = [{"run_id": c.run_id} for c in cells(load_grid(grid))]
    assert paper.pending("replication_gemma", ids[:-1], tmp_path)
    assert not paper.pending("replication_gemma", ids, tmp_path)
    assert not paper.pending("replication_other", [], tmp_path)        # no grid: nothing planned


def test_running_status_names_the_replications_with_cells_to_land(tmp_path):
    from adaptive_lora import paper
    from adaptive_lora.sweep import cells, load_grid
    for name in ("replication_gemma_r8.yaml", "replication_long_r8.yaml"):
        shutil.copy(paper.ROOT / "experiments" / name, tmp_path / name)
    ids = {e: [{"run_id": c.run_id} for c in cells(load_grid(tmp_path / f"{e}_r8.yaml"))]
           for e in ("replication_gemma", "replication_long")}
    assert paper.running_status(ids, tmp_path) == ""
    assert paper.running_status(dict(ids, replication_long=ids["replication_long"][:-1]), tmp_path) == (
        "; replication~A (500 steps) is still running and is reported as far as it has landed")
    assert paper.running_status({}, tmp_path) == (
        "; replications~A (500 steps) and C (Gemma-3-270M) are still running and are reported as far as they have "
        "landed")


def test_replication_lr_appendix_reports_each_replications_own_dev_selection():
    from adaptive_lora import paper
    gemma = [dict(r, config=dict(r["config"], model="gemma3-270m")) for r in v2_cells()
             if r["config"]["strategy"] == "uniform" and r["config"]["seed"] == 0]
    one_lr = [r for r in v2_cells() if r["config"]["lr"] == 3e-4]     # arms run at a chosen lr only: no selection
    chosen, table = paper.replication_lr({"replication_gemma": gemma, "replication_prior": one_lr, "main": v2_cells()})
    assert chosen == "C, \\texttt{uniform}: $3 \\times 10^{-4}$ (development loss 2.4000; not bracketed yet)"
    assert "\\textbf{2.4000}" in table and "2.5000" in table     # one replication: the sentence names it
    assert "smollm2" not in table and "attn" not in table       # part 1 and D have no row here
    gsm = [dict(r, config=dict(r["config"], data="gsm8k")) for r in v2_cells() if r["config"]["seed"] == 0]
    chosen, table = paper.replication_lr({"replication_gemma": gemma, "replication_gsm8k": gsm})
    assert chosen.startswith("B, \\texttt{uniform}: $3 \\times 10^{-4}$") and "B, \\texttt{attn\\_heavy}: $10^{-4}$" in chosen
    assert "\\textit{B (GSM8K)}" in table and "\\textit{C (Gemma-3-270M)}" in table   # one group per replication
    assert paper.replication_lr({"replication_prior": one_lr}) == ("none yet", "% no replication has swept a learning rate yet\n")


def test_provenance_counts_every_committed_run_and_the_protocol_v2_hashes():
    from adaptive_lora import paper

    def run(exp, commit, dirty=False, h=None):
        prov = {"git_commit": commit, "git_dirty": dirty, "machine": {"processor": "x86_64", "cpu_count": 2},
                "packages": {"torch": "2.13.0"}} | ({"training_path_hash": h} if h else {})
        return {"run_id": f"{exp}-{commit}", "config": {"precision": "fp32"}, "provenance": prov}

    def ctx(exps):
        return paper.Inputs(exps=exps, meta={}, prior={}, manifest={}, cells_planned=[], defaults={}, spec=None,
                            budget_main=0, pilot=exps.get("pilot", []))

    exps = {"pilot": [run("pilot", "a"), run("pilot", "b")], "default": [run("default", "a")],
            "main": [run("main", "c", h="h1"), run("main", "d", h="h1")], "replication_x": [run("rx", "d", h="h1")]}
    M, tables = paper.provenance(ctx(exps))
    assert tables == {}
    assert (M["ResultRuns"], M["ResultExperiments"], M["ResultCommits"], M["DirtyRuns"]) == ("6", "four", "4", "none")
    assert M["ProtocolHashSentence"] == ("The 3 runs of the main grid and its replications all carry one "
                                         "training-path hash, \\texttt{h1}.")
    exps["replication_x"] = [run("rx", "e", dirty=True, h="h2")]
    M, _ = paper.provenance(ctx(exps))
    assert (M["ResultCommits"], M["DirtyRuns"]) == ("5", "1 of them")
    assert M["ProtocolHashSentence"] == "The 3 runs of the main grid and its replications carry 2 different " \
                                        "training-path hashes."
    assert paper.provenance(ctx({"pilot": exps["pilot"]}))[0]["ProtocolHashSentence"] == ""


def test_gemma_model_is_read_off_replication_c_records():
    """Blocks from a uniform cell's rank map, parameters per rank unit = budget_params / N at rN; every
    macro n/a before replication C has a uniform cell (no Gemma weights or config are needed)."""
    from adaptive_lora import paper

    rank_map = {f"model.layers.{i}.{k}": 8 for i in range(3) for k in ("self_attn.q_proj", "mlp.up_proj")}
    uniform = {"config": {"strategy": "uniform", "budget": "r8"}, "rank_map": rank_map, "budget_params": 8 * 12345}
    eva = uniform | {"config": {"strategy": "eva", "budget": "r8"}, "budget_params": 1}

    def macros(runs):
        return paper.gemma_model(paper.Inputs(exps={"replication_gemma": runs}, meta={}, prior={}, manifest={},
                                              cells_planned=[], defaults={}, spec=None, budget_main=0))

    assert macros([eva, uniform]) == ({"GemmaLayers": "3", "GemmaParamsPerRank": "12{,}345"}, {})
    assert set(macros([eva])[0].values()) == {"n/a"}


def test_long_finding_answers_replication_a_against_part_1(tmp_path):
    """Amendment 8: at 500 steps, what more rank buys uniform against part 1 and how the repeated arms' effects
    changed. In the synthetic grid, A's uniform gains 0.03 / 0.04 nats from r16 / r32 (part 1: 0.01 / 0.02) and A's
    arms have part 1's effects, so the gains are larger and the effects do not change detectably; nothing is said
    before A has seed pairs."""
    from adaptive_lora import paper
    results = full_grid_results(tmp_path / "results")
    text = paper.long_finding(paper.load_experiments(results))
    assert re.fullmatch(r"At 500 steps \(A\), uniform rank at \\texttt\{r16\} and \\texttt\{r32\} changed the test "
                        r"loss by \$-0\.0\d+\$ and \$-0\.0\d+\$ nats against \\texttt\{r8\} \(part~1: \$-0\.0\d+\$ "
                        r"and \$-0\.0\d+\$; larger\); against part~1, the effects of \\texttt\{attn\\_heavy\}, "
                        r"\\texttt\{ffn\\_heavy\}, and \\texttt\{gradient\} did not change detectably \(changes: "
                        r"Welch intervals, Holm-adjusted\)\.", text), text
    assert text in paper.replications(paper.load_experiments(results))["ReplicationSentence"]
    shutil.rmtree(results / "replication_long")
    assert paper.long_finding(paper.load_experiments(results)) == ""


def test_replication_fixed_lrs_names_each_unswept_arm_and_whose_rate_it_is():
    """Arms run at one lr only in a replication, grouped by where the rate comes from: part 1's selection (v2_cells:
    attn_heavy 1e-4, ffn_heavy 3e-4), the replication's uniform (3e-4 here), both, or neither; D is left out."""
    from adaptive_lora import paper, stats
    main = v2_cells()
    uni = [r for r in main if r["config"]["strategy"] == "uniform"]      # swept: 1e-4 and 3e-4, selects 3e-4

    def arm(strategy, lr, exp_model="smollm2-135m"):
        return [dict(r, run_id=f"{r['run_id']}-x", config=dict(r["config"], model=exp_model))
                for r in main if r["config"]["strategy"] == strategy and r["config"]["lr"] == lr]
    long = uni + arm("attn_heavy", 1e-4) + [dict(r, config=dict(r["config"], lr=1e-3)) for r in arm("ffn_heavy", 3e-4)]
    gemma = [dict(r, config=dict(r["config"], model="gemma3-270m")) for r in uni] + \
        arm("attn_heavy", 3e-4, "gemma3-270m") + arm("ffn_heavy", 3e-4, "gemma3-270m")
    part1 = {"uniform": 3e-4, "attn_heavy": 1e-4, "ffn_heavy": 3e-4}     # v2_cells' selection
    assert part1 == {s["strategy"]: s["lr"] for s in stats.lr_selection(main) if s["budget"] == paper.MAIN_BUDGET}
    assert paper.replication_fixed_lrs({"replication_long": long, "replication_gemma": gemma,
                                        "replication_prior": arm("attn_heavy", 3e-4)}, part1) == (
        "The arms not swept run at one rate: in A, \\texttt{attn\\_heavy} at $10^{-4}$ (part~1's), "
        "\\texttt{ffn\\_heavy} at $10^{-3}$; in C, \\texttt{attn\\_heavy} at $3 \\times 10^{-4}$ (uniform's), "
        "\\texttt{ffn\\_heavy} at $3 \\times 10^{-4}$ (part~1's and uniform's). Where such an arm's rate stands in "
        "another ratio to uniform's than in part~1 and its verdict changed, Section~\\ref{sec:protocol-v2} says so.")
    assert paper.replication_fixed_lrs({"replication_long": uni + arm("attn_heavy", 1e-4)
                                        + arm("attn_heavy", 3e-4)}, part1) == ""     # every arm swept


@pytest.mark.parametrize("a, b, same", [
    (1e-4 / 3, 3.33e-5, True),      # a rounded third is the same rate
    (3.33e-4, 3e-4, False), (1e-3, 3e-3, False), (3e-4, 3e-4, True),
    (3.0, 3.0 * 1.019, True), (3.0, 3.0 * 1.021, False)])     # ratios: 2 % either way
def test_same_rate_allows_the_rounding_of_a_third(a, b, same):
    from adaptive_lora import paper
    assert paper.same_rate(a, b) is same and paper.same_rate(b, a) is same


@pytest.mark.parametrize("lr, ref_lr, swept, expected", [
    (3e-3, 1e-3, frozenset(), "kept 0 of 1; \\texttt{a} was worse (part~1: equivalent; not re-tuned: $3\\times$ "
                               "uniform's learning rate against $1\\times$ in part~1)"),
    (3e-3, 1e-3, frozenset({"a"}), "kept 0 of 1; \\texttt{a} was worse (part~1: equivalent)"),   # re-tuned here
    (1e-3, 1e-3, frozenset(), "kept 0 of 1; \\texttt{a} was worse (part~1: equivalent)"),        # same ratio
    (3.33e-4, 1e-3, frozenset(), "kept 0 of 1; \\texttt{a} was worse (part~1: equivalent; not re-tuned: "
                                 "$0.33\\times$ uniform's learning rate against $1\\times$ in part~1)")])
def test_agreement_notes_an_arm_whose_lr_ratio_to_uniform_changed(lr, ref_lr, swept, expected):
    """A changed verdict of an arm not re-tuned in the replication, whose lr / uniform's lr differs from part 1's,
    says so (the change may be the lr's); a kept verdict never does."""
    from adaptive_lora import paper
    first = endpoint_row("a", "equivalent", lr=3e-3, ref_lr=3e-3)
    assert paper.agreement([first], [endpoint_row("a", "worse", 0.03, lr=lr, ref_lr=ref_lr)], swept=swept) == expected
    assert paper.agreement([first], [endpoint_row("a", "equivalent", lr=lr, ref_lr=ref_lr)]) == \
        "kept 1 of 1 (\\texttt{a})"
    flipped = paper.agreement([dict(first, verdict="better")], [endpoint_row("a", "worse", 0.03, lr=3e-3, ref_lr=1e-3)])
    assert flipped.endswith("(better in part~1; not re-tuned: $3\\times$ uniform's learning rate against $1\\times$ in part~1)")


def test_long_finding_lists_three_kinds_of_change_in_one_series():
    """Each arm's change against part 1 (Welch, Holm) grouped by kind, the groups joined as one series."""
    from adaptive_lora import paper
    from adaptive_lora.report import REPLICATIONS

    def row(strategy, diffs):
        return dict(endpoint_row(strategy, "x", sum(diffs) / len(diffs)), diffs=diffs)
    flat = [0.0, 0.001, -0.001, 0.0005]
    part1 = [row("a", flat), row("b", [-0.02, -0.021, -0.019, -0.0205]), row("c", [-0.001, -0.002, 0.0, -0.0015])]
    long = [row("a", flat), row("b", [-0.005, -0.006, -0.004, -0.0055]), row("c", [0.03, 0.031, 0.029, 0.0305])]
    assert paper.long_finding({}, {REPLICATIONS[0][1]: part1, REPLICATIONS[1][1]: long}) == (
        "At 500 steps (A), against part~1, the effect of \\texttt{a} did not change detectably, that of \\texttt{b} "
        "shrank, and that of \\texttt{c} changed sign (changes: Welch intervals, Holm-adjusted).")
