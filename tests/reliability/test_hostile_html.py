"""The HTML explorer with hostile token text and a hostile model name: the page holds
exactly its own two scripts, the tokens come back unchanged as data, and no markup
from the text or the name reaches the document."""

from __future__ import annotations

import html
import json
import re
import shutil

import pytest

# Markup, a script end tag, an event handler, entities, the page's own template
# placeholders, and the JavaScript line separators that break inline scripts.
TEXT = "</script><img src=x onerror=alert(1)>&amp;\"'"
NAME = "__SCRIPT__ __DATA__ <img src=x onerror=alert(1)> &amp; \u2028"


@pytest.fixture
def page(tiny_gpt_dir, tmp_path, cli):
    model = tmp_path / NAME
    shutil.copytree(tiny_gpt_dir, model)
    out = tmp_path / "explorer.html"
    code, _, err = cli(["inspect", "--model", str(model), "--text", TEXT, "--truncate",
                        "--html", str(out)])
    assert code == 0, err
    return out.read_text(encoding="utf-8")


def _data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="attnlab-data">(.*?)</script>', page, re.S)
    assert found, "the data element is missing"
    return json.loads(found.group(1))


def test_only_the_pages_own_scripts(page):
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert re.search(r"<img\b", page) is None


def test_the_tokens_come_back_unchanged_as_data(page):
    data = _data(page)
    assert "".join(data["stacks"][0]["queryTokens"]) == TEXT[:16]  # the model's 16 positions
    assert data["title"].startswith(NAME)


def test_the_title_is_the_escaped_name_and_nothing_else(page):
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert title.startswith(html.escape(NAME))
    assert "function" not in title and "{" not in title  # no script or data spliced into it


def test_the_page_writes_text_with_textcontent_only(page):
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "document.write" not in page
