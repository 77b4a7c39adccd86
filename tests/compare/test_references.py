"""attnlab.compare.references: the facts of every work the issue lists, and well-formed BibTeX."""

from __future__ import annotations

import re

import pytest

from attnlab.compare.references import GROUPS, REFERENCES, TOPICS, cite, select
from attnlab.errors import AttnlabError

# (topic, first author's family name, year, venue fragment, pages, DOI, arXiv id): checked against
# the publishers' records (ACL Anthology, NeurIPS/DBLP, IEEE, Nature, APA) and arXiv.
FACTS = [
    ("perceptron", "Rosenblatt", 1958, "Psychological Review", "386--408", "10.1037/h0042519", ""),
    ("mlp", "Rumelhart", 1986, "Nature", "533--536", "10.1038/323533a0", ""),
    ("transformer", "Vaswani", 2017, "Neural Information Processing Systems 30", "5998--6008", "",
     "1706.03762"),
    ("bert", "Devlin", 2019, "North American Chapter", "4171--4186", "10.18653/v1/N19-1423", "1810.04805"),
    ("gpt", "Radford", 2018, "OpenAI", "", "", ""),
    ("gpt2", "Radford", 2019, "OpenAI", "", "", ""),
    ("gpt3", "Brown", 2020, "Neural Information Processing Systems 33", "1877--1901", "", "2005.14165"),
    ("layernorm", "Ba", 2016, "arXiv", "", "", "1607.06450"),
    ("gelu", "Hendrycks", 2016, "arXiv", "", "", "1606.08415"),
    ("residual", "He", 2016, "Computer Vision and Pattern Recognition", "770--778", "10.1109/CVPR.2016.90",
     "1512.03385"),
    ("bpe", "Sennrich", 2016, "54th Annual Meeting", "1715--1725", "10.18653/v1/P16-1162", "1508.07909"),
    ("wordpiece", "Schuster", 2012, "ICASSP", "5149--5152", "10.1109/ICASSP.2012.6289079", ""),
    ("bleu", "Papineni", 2002, "40th Annual Meeting", "311--318", "10.3115/1073083.1073135", ""),
    ("nucleus", "Holtzman", 2020, "Learning Representations", "", "", "1904.09751"),
    ("value-weighted", "Kobayashi", 2020, "Empirical Methods", "7057--7075",
     "10.18653/v1/2020.emnlp-main.574", "2004.10102"),
    ("rollout", "Abnar", 2020, "58th Annual Meeting", "4190--4197", "10.18653/v1/2020.acl-main.385",
     "2005.00928"),
]


@pytest.mark.parametrize("topic, family, year, venue, pages, doi, arxiv", FACTS, ids=[f[0] for f in FACTS])
def test_facts(topic, family, year, venue, pages, doi, arxiv):
    (ref,) = select([topic])
    assert ref.authors[0][0] == family and ref.year == year and venue in ref.venue
    assert (ref.pages, ref.doi, ref.arxiv) == (pages, doi, arxiv)
    assert ref.doi or ref.arxiv or ref.url.startswith("https://cdn.openai.com/")


def test_author_lists():
    assert [a[0] for a in select(["transformer"])[0].authors] == [
        "Vaswani", "Shazeer", "Parmar", "Uszkoreit", "Jones", "Gomez", "Kaiser", "Polosukhin"]
    assert [a[0] for a in select(["bert"])[0].authors] == ["Devlin", "Chang", "Lee", "Toutanova"]
    gpt3 = select(["gpt3"])[0].authors
    assert len(gpt3) == 31 and gpt3[-1] == ("Amodei", "Dario") and gpt3[28] == ("Radford", "Alec")
    gpt2 = ["Radford", "Wu", "Child", "Luan", "Amodei", "Sutskever"]
    assert [a[0] for a in select(["gpt2"])[0].authors] == gpt2
    assert [a[0] for a in select(["gpt"])[0].authors] == ["Radford", "Narasimhan", "Salimans", "Sutskever"]


def test_bibtex_is_well_formed():
    text = cite(["all"])
    entries = text.split("\n\n")
    assert len(entries) == len(REFERENCES) == len(set(REFERENCES))
    assert text.isascii()  # accents as LaTeX: {\L}ukasz Kaiser, Lebr{\'o}n
    assert r"Kaiser, {\L}ukasz" in text and r"Lebr{\'o}n, Federico" in text
    for entry in entries:
        assert re.match(r"@(article|inproceedings|techreport|misc)\{[a-z0-9]+,\n", entry), entry[:60]
        depth = 0
        for ch in entry:
            depth += {"{": 1, "}": -1}.get(ch, 0)
            assert depth >= 0
        assert depth == 0 and entry.endswith("\n}")
        assert re.search(r"\n  author\s+= \{", entry) and re.search(r"\n  year\s+= \{\d{4}\}", entry)
    assert "title         = {{BERT}: Pre-training" in cite(["bert"])


def test_text_format_and_groups():
    line = cite(["transformer"], fmt="text")
    assert line.startswith("[vaswani2017attention] Ashish Vaswani, Noam Shazeer,")
    assert "and Illia Polosukhin (2017). Attention Is All You Need. In Advances" in line
    assert "pp. 5998\u20136008" in line and line.endswith("arXiv:1706.03762.")
    assert "BERT: Pre-training" in cite(["bert"], fmt="text")  # braces gone
    assert set(GROUPS["models"]) | set(GROUPS["techniques"]) == set(REFERENCES)
    assert all(keys[0] in REFERENCES for keys in TOPICS.values())
    assert [r.key for r in select(["bert", "bert", "devlin2019bert"])] == ["devlin2019bert"]
    with pytest.raises(AttnlabError, match="--format must be one of"):
        cite(["bert"], fmt="ris")
