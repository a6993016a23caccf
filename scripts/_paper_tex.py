"""Helpers shared by the paper scripts: reading the LaTeX subset the paper is written in, and turning it into Markdown.

The paper's prose lives in one place, ``paper/sections/*.tex``. ``build_draft_md.py`` converts it with
``LatexToMarkdown``, which understands exactly the subset the paper uses (sections, paragraphs, lists, tables from
``tabular``, figures, inline math, citations, references, the macros of ``generated/numbers.tex`` and of the
preamble) and fails loudly on any other command, so that the Markdown draft never silently drops content.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

PAPER = Path(__file__).resolve().parents[1] / "paper"


# ------------------------------------------------------------------------------------------------ low-level parsing
def read_group(s: str, i: int, open_: str = "{", close: str = "}") -> tuple[str, int]:
    """``s[i] == open_``: the balanced group's content and the index after its closing character."""
    if i >= len(s) or s[i] != open_:
        raise ValueError(f"expected '{open_}' at {i}: {s[i:i + 40]!r}")
    depth, j = 0, i
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return s[i + 1:j], j + 1
        j += 1
    raise ValueError(f"unbalanced '{open_}' at {i}: {s[i:i + 40]!r}")


def read_args(s: str, i: int, n: int, optional: bool = False) -> tuple[list[str], str | None, int]:
    """Read an optional ``[...]`` (when ``optional``) and ``n`` braced arguments starting at ``i`` (spaces allowed
    before each); -> (arguments, optional argument or None, end index)."""
    opt = None
    j = i
    while j < len(s) and s[j] in " \t":
        j += 1
    if optional and j < len(s) and s[j] == "[":
        opt, j = read_group(s, j, "[", "]")
    args = []
    for _ in range(n):
        while j < len(s) and s[j] in " \t\n":
            j += 1
        a, j = read_group(s, j)
        args.append(a)
    return args, opt, j


def strip_comments(text: str) -> str:
    """Drop LaTeX comments (an unescaped % to the end of the line); whole-line comments vanish with their line."""
    out = []
    for line in text.split("\n"):
        m = re.search(r"(?<!\\)(?:\\\\)*%", line)
        if m is None:
            out.append(line)
            continue
        # the match may start with an even number of backslashes (escaped backslashes) before the %
        cut = m.end() - 1
        kept = line[:cut]
        if kept.strip() or not line.lstrip().startswith("%"):
            out.append(kept.rstrip())
    return "\n".join(out)


def parse_newcommands(tex: str) -> tuple[dict[str, str], dict[str, tuple[int, str]]]:
    """``\\newcommand{\\Name}{value}`` definitions -> ({name: value} without arguments, {name: (n, body)} with)."""
    plain: dict[str, str] = {}
    with_args: dict[str, tuple[int, str]] = {}
    text = strip_comments(tex)
    for m in re.finditer(r"\\(?:re)?newcommand\*?\s*(?:\{\\([A-Za-z]+)\}|\\([A-Za-z]+))", text):
        name = m[1] or m[2]
        j = m.end()
        nargs = 0
        k = j
        while k < len(text) and text[k] in " \t":
            k += 1
        if k < len(text) and text[k] == "[":
            n, k = read_group(text, k, "[", "]")
            nargs = int(n)
            j = k
        (body,), _, _ = read_args(text, j, 1)
        if nargs:
            with_args[name] = (nargs, body)
        else:
            plain[name] = body
    return plain, with_args


def expand_macros(text: str, macros: dict[str, str], depth: int = 12) -> str:
    """Replace argument-less macros (and a directly following ``{}``) by their values, recursively."""
    if not macros:
        return text
    pattern = re.compile(r"\\([A-Za-z]+)(\{\})?")
    for _ in range(depth):
        changed = False

        def sub(m):
            nonlocal changed
            if m[1] in macros:
                changed = True
                return macros[m[1]]
            return m[0]
        text = pattern.sub(sub, text)
        if not changed:
            return text
    raise ValueError("macro expansion does not terminate (a macro refers to itself?)")


def parse_aux_labels(aux: str) -> dict[str, str]:
    """``\\newlabel{key}{{number}{page}...}`` lines of a LaTeX .aux file -> {key: number} (hyperref's sub-labels
    such as ``key@cref`` are skipped)."""
    out = {}
    for m in re.finditer(r"\\newlabel\{([^}]+)\}\{\{([^}]*)\}", aux):
        if "@" not in m[1]:
            out[m[1]] = m[2]
    return out


# ------------------------------------------------------------------------------------------------------- BibTeX
def parse_bib(text: str) -> dict[str, dict[str, str]]:
    """A small BibTeX reader for the project's own references.bib: {key: {"type": ..., field: value}}."""
    entries: dict[str, dict[str, str]] = {}
    for m in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        kind, key = m[1].lower(), m[2]
        if kind in ("comment", "string", "preamble"):
            continue
        fields: dict[str, str] = {"type": kind}
        j = m.end()
        while True:
            fm = re.compile(r"\s*(\w+)\s*=\s*").match(text, j)
            if fm is None:
                break
            j = fm.end()
            if text[j] == "{":
                val, j = read_group(text, j)
            elif text[j] == '"':
                k = text.index('"', j + 1)
                val, j = text[j + 1:k], k + 1
            else:
                vm = re.compile(r"[\w.-]+").match(text, j)
                val, j = vm[0], vm.end()
            fields[fm[1].lower()] = re.sub(r"\s+", " ", val).strip()
            cm = re.compile(r"\s*,").match(text, j)
            if cm is None:
                break
            j = cm.end()
        if key in entries:
            raise ValueError(f"duplicate BibTeX key {key}")
        entries[key] = fields
    return entries


ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304",
           ".": "\u0307", "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328"}


def _plain(s: str) -> str:
    """BibTeX field text -> plain Unicode text (accent commands become accented letters, braces go)."""
    import unicodedata

    s = re.sub(r"\\([ij])\b", r"\1", s)  # dotless i/j inside accents
    s = re.sub(r"\\([`'^\"~=.uvHck])\s*\{?\s*(\w)\s*\}?", lambda m: m[2] + ACCENTS[m[1]], s)
    s = s.replace("\\&", "&").replace("---", "—").replace("--", "–").replace("\\_", "_")
    s = s.replace("``", "“").replace("''", "”")
    return unicodedata.normalize("NFC", re.sub(r"[{}]", "", s)).strip()


def bib_authors(entry: dict) -> list[str]:
    return [a.strip() for a in re.split(r"\s+and\s+", entry.get("author", "")) if a.strip()]


def last_name(name: str) -> str:
    if name == "others":
        return name
    if "," in name:
        return _plain(name.split(",")[0])
    braced = re.fullmatch(r".*\{([^{}]+)\}\s*", name)
    if braced:  # "Loubna {Ben Allal}"
        return braced[1]
    parts = _plain(name).split()
    # particles stay with the surname (von Werra, de Laroussilhe)
    k = len(parts) - 1
    while k > 0 and parts[k - 1][:1].islower():
        k -= 1
    return " ".join(parts[k:])


def cite_label(entry: dict, key: str) -> tuple[str, str]:
    """(authors part, year) as natbib's author-year style shows them."""
    authors = bib_authors(entry)
    year = entry.get("year", "n.d.")
    if not authors:
        return _plain(entry.get("key", entry.get("title", key))), year
    names = [last_name(a) for a in authors]
    if len(names) >= 3 or "others" in names:
        return f"{names[0]} et al.", year
    if len(names) == 2:
        return f"{names[0]} and {names[1]}", year
    return names[0], year


def reference_line(entry: dict, key: str) -> str:
    """One entry of the Markdown reference list."""
    authors = [("et al." if a == "others" else _plain(a)) for a in bib_authors(entry)]
    who = ", ".join(authors) if authors else _plain(entry.get("key", key))
    venue = entry.get("booktitle") or entry.get("journal") or entry.get("howpublished") or entry.get("publisher") or ""
    venue = re.sub(r"\\url\{([^}]*)\}", r"<\1>", venue)
    parts = [f"{who} ({entry.get('year', 'n.d.')}).", f"{_plain(entry.get('title', ''))}."]
    if venue:
        parts.append(f"*{_plain(venue) if '<' not in venue else venue}*.")
    if entry.get("note"):
        parts.append(_plain(re.sub(r"\\url\{([^}]*)\}", r"<\1>", entry["note"])) + ".")
    if entry.get("url") and entry.get("url") not in venue:
        parts.append(f"<{entry['url']}>")
    return " ".join(parts).replace("..", ".")


# --------------------------------------------------------------------------------------------- LaTeX -> Markdown
SIMPLE_MATH = {r"\pm": "±", "-": "−", "<": "<", ">": ">", r"\times": "×", r"\approx": "≈", r"\le": "≤",
               r"\ge": "≥", r"\leq": "≤", r"\geq": "≥", "+": "+", r"\to": "→", r"\sim": "~"}
DROP = {"noindent", "centering", "small", "footnotesize", "scriptsize", "normalsize", "medskip", "smallskip",
        "bigskip", "clearpage", "newpage", "par", "hfill", "raggedright", "protect", "sloppy", "tiny", "maketitle",
        "allowbreak", "appendix", "frenchspacing", "selectfont", "phantomsection", "ignorespaces", "unskip"}
DROP_WITH_ARG = {"vspace", "hspace", "label", "addcontentsline", "bibliographystyle", "pdfbookmark"}
FLOATS = {"table": "Table", "figure": "Figure"}


@dataclass
class LatexToMarkdown:
    """Convert the paper's LaTeX subset to Markdown. ``root`` is the folder \\input paths are relative to."""
    root: Path
    macros: dict[str, str] = field(default_factory=dict)
    bib: dict[str, dict] = field(default_factory=dict)
    title_block: str = ""
    errors: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    cited: list[str] = field(default_factory=list)
    footnotes: list[str] = field(default_factory=list)
    _blocks: list[str] = field(default_factory=list)
    _maths: list[str] = field(default_factory=list)

    # ---------------------------------------------------------------- preparation
    def load(self, path: Path, seen: tuple = ()) -> str:
        """Read a .tex file with its \\input files resolved, comments and indentation removed, macros expanded."""
        if path in seen:
            raise ValueError(f"\\input loop at {path}")
        text = strip_comments(path.read_text(encoding="utf-8"))
        text = "\n".join(line.strip() for line in text.split("\n"))
        text = expand_macros(text, self.macros)
        return self._resolve_inputs(text, seen + (path,))

    def _resolve_inputs(self, text: str, seen: tuple) -> str:
        out, i = [], 0
        pat = re.compile(r"\\(input|include|InputIfFileExists)\b")
        while True:
            m = pat.search(text, i)
            if m is None:
                out.append(text[i:])
                return "".join(out)
            out.append(text[i:m.start()])
            if m[1] == "InputIfFileExists":
                (name, then, other), _, j = read_args(text, m.end(), 3)
            else:
                (name,), _, j = read_args(text, m.end(), 1)
                then, other = "", None
            p = self.root / name
            if not p.suffix:
                p = p.with_suffix(".tex")
            if p.exists():
                out.append(then + self.load(p, seen))
            elif other is not None:
                out.append(other)
            else:
                self.errors.append(f"\\input file not found: {name}")
            i = j

    def number_labels(self, text: str) -> dict[str, str]:
        """Label -> number as LaTeX assigns them: sections (letters after \\appendix), subsections, floats by
        caption order, equations."""
        sec, sub, appendix, eq = 0, 0, False, 0
        floats = {"table": 0, "figure": 0}
        current_float = None
        last = None
        pat = re.compile(r"\\(section|subsection)(\*?)\{|\\appendix\b|\\begin\{(table|figure|equation|align)\*?\}"
                         r"|\\end\{(table|figure)\*?\}|\\caption\{|\\label\{([^}]+)\}")
        for m in pat.finditer(text):
            tok = m[0]
            if m[1] == "section" and not m[2]:
                sec, sub = sec + 1, 0
                last = self._secnum(sec, appendix)
            elif m[1] == "subsection" and not m[2]:
                sub += 1
                last = f"{self._secnum(sec, appendix)}.{sub}"
            elif tok.startswith("\\appendix"):
                appendix, sec, sub = True, 0, 0
            elif m[3] in ("table", "figure"):
                current_float = m[3]
            elif m[3] in ("equation", "align"):
                eq += 1
                last = str(eq)
            elif m[4]:
                current_float = None
            elif tok.startswith("\\caption") and current_float:
                floats[current_float] += 1
                last = str(floats[current_float])
            elif m[5]:
                if last is None:
                    self.errors.append(f"label {m[5]} before any numbered object")
                self.labels[m[5]] = last or "??"
        return self.labels

    @staticmethod
    def _secnum(n: int, appendix: bool) -> str:
        return chr(ord("A") + n - 1) if appendix else str(n)

    # ---------------------------------------------------------------- conversion
    def convert_document(self, main: Path) -> str:
        full = self.load(main)
        body = full.split("\\begin{document}", 1)[-1].split("\\end{document}", 1)[0]
        self.number_labels(body)
        self._sec, self._sub, self._appendix = 0, 0, False
        self._floats = {"table": 0, "figure": 0}
        md = self.fragment(body, top=True)
        md = md.replace("\x02REFERENCES\x02", self._references())
        if self.footnotes:
            md += "\n\n" + "\n".join(f"[^{i}]: {t}" for i, t in enumerate(self.footnotes, 1))
        md = re.sub(r"\n{3,}", "\n\n", md).strip() + "\n"
        self._check_leftovers(md)
        return md

    def _block(self, md: str) -> str:
        self._blocks.append(md)
        return f"\n\n\x00{len(self._blocks) - 1}\x00\n\n"

    def _restore(self, text: str) -> str:
        for _ in range(20):
            new = re.sub(r"\x00(\d+)\x00", lambda m: self._blocks[int(m[1])], text)
            if new == text:
                return new
            text = new
        return text

    def fragment(self, text: str, top: bool = False) -> str:
        """Convert a piece of body text: environments, sectioning (at top level), then inline markup."""
        text = self._environments(text)
        text = self._sectioning(text)
        text = self.inline(text)
        text = self._restore(text)
        return re.sub(r"[ \t]+\n", "\n", text)

    # environments --------------------------------------------------------
    def _environments(self, text: str) -> str:
        out, i = [], 0
        while True:
            m = re.compile(r"\\begin\{(\w+\*?)\}").search(text, i)
            if m is None:
                out.append(text[i:])
                return "".join(out)
            name = m[1]
            start_body = m.end()
            depth, j = 1, start_body
            pat = re.compile(r"\\(begin|end)\{" + re.escape(name) + r"\}")
            while depth:
                e = pat.search(text, j)
                if e is None:
                    raise ValueError(f"\\begin{{{name}}} without \\end")
                depth += 1 if e[1] == "begin" else -1
                j = e.end()
            inner = text[start_body:e.start()]
            out.append(text[i:m.start()])
            out.append(self._environment(name.rstrip("*"), inner))
            i = j

    def _environment(self, name: str, inner: str) -> str:
        if name in ("itemize", "enumerate", "description"):
            return self._block(self._list(name, inner))
        if name == "abstract":
            return self._block("## Abstract\n\n" + self.fragment(inner).strip())
        if name in FLOATS:
            return self._block(self._float(name, inner))
        if name in ("tabular", "longtable", "tabularx"):
            return self._block(self._tabular(inner, name))
        if name in ("equation", "align", "displaymath"):
            body = re.sub(r"\\label\{[^}]*\}", "", inner).strip()
            if name == "align":
                body = "\\begin{aligned}\n" + body + "\n\\end{aligned}"
            return self._block(f"$$\n{body}\n$$")
        if name in ("center", "flushleft", "small", "footnotesize", "minipage", "quote"):
            if name == "minipage":
                inner = re.sub(r"^\s*(\[[^\]]*\])?\{[^}]*\}", "", inner)
            return self._block(self.fragment(inner).strip())
        self.errors.append(f"unsupported environment: {name}")
        return ""

    def _list(self, name: str, inner: str) -> str:
        inner = self._environments(inner)  # nested lists become blocks first
        items = re.split(r"\\item\b", inner)
        lines = []
        for k, item in enumerate(items[1:], 1):
            label = None
            item = item.lstrip()
            if item.startswith("["):
                label, end = read_group(item, 0, "[", "]")
                item = item[end:]
            text = self._restore(self.inline(item)).strip()
            text = re.sub(r"\s*\n\s*", " ", text) if "\n\n" not in text else text
            text = text.replace("\n", "\n  ")
            bullet = f"{k}." if name == "enumerate" else "-"
            if label is not None:
                text = f"**{self._restore(self.inline(label)).strip()}** {text}"
            lines.append(f"{bullet} {text}")
        return "\n".join(lines)

    def _float(self, kind: str, inner: str) -> str:
        inner = re.sub(r"^\s*\[[^\]]*\]", "", inner)
        caption = ""
        cm = re.search(r"\\caption\{", inner)
        if cm:
            (caption,), _, end = read_args(inner, cm.end() - 1, 1)
            inner = inner[:cm.start()] + inner[end:]
        self._floats[kind] += 1
        num = self._floats[kind]
        cap = re.sub(r"\s+", " ", self._restore(self.inline(caption))).strip()
        if kind == "figure":
            gm = re.search(r"\\PaperGraphic\{([^}]+)\}", inner)
            name = gm[1] if gm else None
            png = self.root / "figures" / f"{name}.png" if name else None
            if png is not None and png.exists():
                return f"![Figure {num}]({png.relative_to(self.root).as_posix()})\n\n*Figure {num}.* {cap}"
            return f"*Figure {num} (not yet generated: `make figures` writes it once results exist).* {cap}"
        body = self._restore(self.fragment(inner)).strip()
        return f"**Table {num}.** {cap}\n\n{body}"

    def _tabular(self, inner: str, name: str) -> str:
        inner = inner.lstrip()
        if name == "tabularx":
            _, inner = read_group(inner, 0)[0], inner[read_group(inner, 0)[1]:].lstrip()
        if inner.startswith("["):
            inner = inner[read_group(inner, 0, "[", "]")[1]:].lstrip()
        _, end = read_group(inner, 0)  # column spec
        inner = inner[end:]
        inner = re.sub(r"\\(toprule|midrule|bottomrule|hline|addlinespace|endhead|endfirsthead|endfoot|endlastfoot)"
                       r"(\[[^\]]*\])?", "", inner)
        inner = re.sub(r"\\cmidrule(\([^)]*\))?\{[^}]*\}", "", inner)
        rows = []
        for raw in re.split(r"\\\\(?:\[[^\]]*\])?", inner):
            if not raw.strip():
                continue
            cells = []
            for cell in self._split_cells(raw):
                mm = re.match(r"\s*\\multicolumn\{(\d+)\}\{[^}]*\}\{", cell)
                if mm:
                    content, _ = read_group(cell, mm.end() - 1)
                    cells.append(content)
                    cells.extend([""] * (int(mm[1]) - 1))
                else:
                    cells.append(cell)
            rows.append([re.sub(r"\s+", " ", self._restore(self.inline(c))).strip().replace("|", "\\|")
                         for c in cells])
        if not rows:
            return ""
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)

    @staticmethod
    def _split_cells(row: str) -> list[str]:
        cells, depth, cur, i = [], 0, [], 0
        while i < len(row):
            c = row[i]
            if c == "\\" and i + 1 < len(row):
                cur.append(row[i:i + 2])
                i += 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            if c == "&" and depth == 0:
                cells.append("".join(cur))
                cur = []
            else:
                cur.append(c)
            i += 1
        cells.append("".join(cur))
        return cells

    # sectioning ---------------------------------------------------------
    def _sectioning(self, text: str) -> str:
        out, i = [], 0
        pat = re.compile(r"\\(section|subsection|subsubsection|paragraph)(\*?)\{|\\appendix\b|\\bibliography\{([^}]*)\}"
                         r"|\\maketitle\b")
        for m in pat.finditer(text):
            if m.start() < i:
                continue
            out.append(text[i:m.start()])
            tok = m[0]
            if tok.startswith("\\appendix"):
                self._appendix, self._sec, self._sub = True, 0, 0
                out.append(self._block("---\n\n# Appendix"))
                i = m.end()
                continue
            if tok.startswith("\\maketitle"):
                out.append(self._block(self.title_block))
                i = m.end()
                continue
            if m[3] is not None:  # filled in at the end, once every citation has been seen
                out.append(self._block("\x02REFERENCES\x02"))
                i = m.end()
                continue
            (title,), _, end = read_args(text, m.end() - 1, 1)
            title = self._restore(self.inline(title)).strip()
            if m[1] == "section":
                if m[2]:
                    head = f"## {title}"
                else:
                    self._sec, self._sub = self._sec + 1, 0
                    head = f"## {self._secnum(self._sec, self._appendix)} {title}"
            elif m[1] == "subsection":
                if m[2]:
                    head = f"### {title}"
                else:
                    self._sub += 1
                    head = f"### {self._secnum(self._sec, self._appendix)}.{self._sub} {title}"
            elif m[1] == "subsubsection":
                head = f"#### {title}"
            else:  # paragraph: a bold run-in heading
                t = title if title.endswith((".", "?", ":")) else title + "."
                out.append(f"\n\n**{t}** ")
                i = end
                continue
            out.append(self._block(head))
            i = end
        out.append(text[i:])
        return "".join(out)

    def _references(self) -> str:
        keys = sorted(dict.fromkeys(self.cited), key=lambda k: (cite_label(self.bib[k], k)[0].lower(),
                                                                  self.bib[k].get("year", ""), k))
        return "## References\n\n" + "\n".join(f"- {reference_line(self.bib[k], k)}" for k in keys)

    # inline ---------------------------------------------------------------
    def inline(self, text: str) -> str:
        """Inline markup outside math -> Markdown; math kept as $...$ (simple symbols become Unicode). Math is
        set aside first, so that commands whose arguments contain math keep balanced braces."""
        def keep_math(m):
            inner = re.sub(r"\s+", " ", m[0][1:-1]).strip()
            self._maths.append(SIMPLE_MATH.get(inner, f"${inner}$") if inner else "")
            return f"\x03{len(self._maths) - 1}\x03"

        text = re.sub(r"(?<!\\)\$[^$]*(?<!\\)\$", keep_math, text)
        out = self._text(text)
        return re.sub(r"\x03(\d+)\x03", lambda m: self._maths[int(m[1])], out)

    def _cite(self, cmd: str, keys: str, opt: str | None) -> str:
        labels = []
        for key in [k.strip() for k in keys.split(",") if k.strip()]:
            if key not in self.bib:
                self.errors.append(f"citation {key} not in references.bib")
                labels.append((key, "?"))
                continue
            self.cited.append(key)
            labels.append(cite_label(self.bib[key], key))
        if cmd == "citet":
            return "; ".join(f"{a} ({y})" for a, y in labels)
        inner = "; ".join(f"{a}, {y}" for a, y in labels)
        if opt:
            inner += f", {opt}"
        return inner if cmd == "citealp" else f"({inner})"

    def _text(self, s: str) -> str:
        protected: list[str] = []

        def keep(md: str) -> str:
            protected.append(md)
            return f"\x01{len(protected) - 1}\x01"

        out, i = [], 0
        pat = re.compile(r"\\([A-Za-z]+)|\\([%&#_${}, @/\-\\ ])")
        while True:
            m = pat.search(s, i)
            if m is None:
                out.append(s[i:])
                break
            out.append(s[i:m.start()])
            i = m.end()
            if m[2] is not None:
                ch = m[2]
                out.append({",": " ", "@": "", "/": "", "-": "", " ": " ", "\\": "\n"}.get(ch, keep(ch)))
                continue
            cmd = m[1]
            if cmd in ("cite", "citep", "citet", "citealp"):
                (keys,), opt, i = read_args(s, i, 1, optional=True)
                out.append(keep(self._cite(cmd, keys, opt)))
            elif cmd in ("ref", "eqref", "autoref"):
                (key,), _, i = read_args(s, i, 1)
                if key not in self.labels:
                    self.errors.append(f"undefined reference {key}")
                num = self.labels.get(key, "??")
                out.append(keep(f"({num})" if cmd == "eqref" else num))
            elif cmd in ("emph", "textit"):
                (a,), _, i = read_args(s, i, 1)
                out.append(keep(f"*{self._restore(self.inline(a)).strip()}*"))
            elif cmd == "textbf":
                (a,), _, i = read_args(s, i, 1)
                out.append(keep(f"**{self._restore(self.inline(a)).strip()}**"))
            elif cmd in ("texttt", "path", "nolinkurl"):
                (a,), _, i = read_args(s, i, 1)
                a = re.sub(r"\\(allowbreak|-)\b|\\-", "", a)
                a = re.sub(r"\\([_%&#${}])", r"\1", a).replace("\\textasciitilde{}", "~").replace("{}", "")
                out.append(keep(f"`{a}`"))
            elif cmd == "url":
                (a,), _, i = read_args(s, i, 1)
                out.append(keep(f"<{a}>"))
            elif cmd == "href":
                (u, t), _, i = read_args(s, i, 2)
                out.append(keep(f"[{self._restore(self.inline(t)).strip()}]({u})"))
            elif cmd == "footnote":
                (a,), _, i = read_args(s, i, 1)
                self.footnotes.append(re.sub(r"\s+", " ", self._restore(self.inline(a))).strip())
                out.append(keep(f"[^{len(self.footnotes)}]"))
            elif cmd in ("textsc", "mbox", "text", "textrm", "textnormal", "textsf", "makebox"):
                (a,), _, i = read_args(s, i, 1)
                out.append(self._restore(self.inline(a)))
            elif cmd in ("ldots", "dots"):
                out.append("…")
            elif cmd in ("quad", "qquad", "enspace", "thinspace"):
                out.append(" ")
            elif cmd in ("textasciitilde",):
                out.append(keep("~"))
            elif cmd in ("S",):
                out.append("§")
            elif cmd in ("item",):
                self.errors.append("\\item outside a list")
            elif cmd in DROP:
                pass
            elif cmd in ("setlength", "addtolength"):
                _, _, i = read_args(s, i, 2)
            elif cmd in DROP_WITH_ARG:
                _, _, i = read_args(s, i, 1, optional=True)
            else:
                self.errors.append(f"unsupported command \\{cmd}")
                out.append(m[0])
        text = "".join(out)
        # typography (outside protected code, URLs and citations)
        text = text.replace("---", "—").replace("--", "–").replace("``", "“").replace("''", "”")
        text = text.replace("~", " ").replace("{", "").replace("}", "")
        text = re.sub(r"(?<=\S)[ \t]{2,}", " ", text)
        return re.sub(r"\x01(\d+)\x01", lambda mm: protected[int(mm[1])], text)

    def _check_leftovers(self, md: str) -> None:
        """Any \\command left outside math and code is a conversion gap."""
        no_code = re.sub(r"`[^`]*`", "", md)
        no_math = re.sub(r"\$\$.*?\$\$|\$[^$\n]*\$", "", no_code, flags=re.S)
        for m in re.finditer(r"\\[A-Za-z]+", no_math):
            self.errors.append(f"left in the Markdown: {m[0]}")
