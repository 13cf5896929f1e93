"""One self-contained HTML report: tables, figures embedded as data URIs, the definition of every metric,
and provenance — a single file that opens offline in any browser (no script, no external resource)."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from corrbench.report.render import Table, render

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #1b1b1b; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: 1rem 0 1.6rem; font-size: .85rem; }
caption { text-align: left; font-weight: 600; padding-bottom: .3rem; }
th, td { border: 1px solid #d6d6d6; padding: .25rem .45rem; white-space: nowrap; }
thead th { background: #f3f3f3; } tfoot td { white-space: normal; color: #555; font-size: .8rem; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .85rem; }
dl.definitions dt { font-weight: 600; margin-top: .5rem; } dl.definitions dd { margin-left: 1.2rem; }
.scroll { overflow-x: auto; } nav a { margin-right: 1rem; }
"""


@dataclass
class HtmlReport:
    """Sections in order; `render()` gives the whole document."""

    title: str
    intro: str = ""
    sections: list[tuple[str, str, str]] = field(default_factory=list)   # (anchor, heading, html body)

    def add_tables(self, heading: str, tables: Sequence[Table], note: str = "") -> None:
        body = (f"<p>{html.escape(note)}</p>" if note else "")
        body += "".join(f'<div class="scroll">{render(table, "html")}</div>' for table in tables)
        self._add(heading, body)

    def add_figures(self, heading: str, images: Sequence[tuple[Path, str]]) -> None:
        """PNG files embedded as base64 data URIs, each with a caption."""
        parts = []
        for path, caption in images:
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            alt = html.escape(caption or Path(path).stem)
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        if parts:
            self._add(heading, "".join(parts))

    def add_definitions(self, heading: str, definitions: Sequence[tuple[str, str]]) -> None:
        items = "".join(f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in definitions)
        self._add(heading, f'<dl class="definitions">{items}</dl>')

    def add_html(self, heading: str, body: str) -> None:
        self._add(heading, body)

    def _add(self, heading: str, body: str) -> None:
        anchor = f"s{len(self.sections) + 1}"
        self.sections.append((anchor, heading, body))

    def render(self) -> str:
        nav = "".join(f'<a href="#{a}">{html.escape(h)}</a>' for a, h, _ in self.sections)
        body = "".join(f'<section id="{a}"><h2>{html.escape(h)}</h2>{b}</section>' for a, h, b in self.sections)
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1>"
                + (f"<p>{html.escape(self.intro)}</p>" if self.intro else "")
                + f"<nav>{nav}</nav>{body}</body></html>\n")
