"""Citations for every model and technique attnlab implements, as BibTeX or text.

    from attnlab.compare.references import cite
    print(cite(["bert"], fmt="bibtex"))

Each entry was checked against its publisher's record (ACL Anthology, NeurIPS
proceedings / DBLP, IEEE, Nature, APA PsycNet) or, for preprints and technical
reports, its arXiv or OpenAI page: authors in order, title, venue, year, pages,
DOI and arXiv id. The two GPT reports of OpenAI (2018, 2019) were never published
elsewhere and have neither DOI nor arXiv id; their PDF address is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnlab.errors import AttnlabError


@dataclass(frozen=True)
class Reference:
    """One work. ``authors`` are (family, given) pairs, in the paper's order."""

    key: str
    kind: str  # BibTeX entry type: article, inproceedings, techreport, misc
    authors: tuple[tuple[str, str], ...]
    title: str  # braces protect capitals in BibTeX: "{BERT}: ..."
    year: int
    venue: str = ""  # journal, booktitle or institution
    volume: str = ""
    number: str = ""
    pages: str = ""  # "386--408"
    publisher: str = ""
    address: str = ""
    doi: str = ""
    arxiv: str = ""
    url: str = ""
    note: str = ""
    used_for: str = ""  # what attnlab takes from it

    def bibtex(self) -> str:
        """A BibTeX entry (ASCII only: accents as LaTeX commands)."""
        venue_field = {"article": "journal", "inproceedings": "booktitle", "techreport": "institution"}
        fields: list[tuple[str, str]] = [
            ("author", " and ".join(f"{family}, {given}" if given else family
                                    for family, given in self.authors)),
            ("title", self.title),
        ]
        if self.venue:
            fields.append((venue_field.get(self.kind, "howpublished"), self.venue))
        for name in ("volume", "number", "pages", "publisher", "address"):
            if getattr(self, name):
                fields.append((name, getattr(self, name)))
        fields.append(("year", str(self.year)))
        if self.doi:
            fields.append(("doi", self.doi))
        if self.arxiv:
            fields += [("eprint", self.arxiv), ("archiveprefix", "arXiv")]
        if self.url:
            fields.append(("url", self.url))
        if self.note:
            fields.append(("note", self.note))
        width = max(len(name) for name, _ in fields)
        body = ",\n".join(f"  {name:<{width}} = {{{_latex(value)}}}" for name, value in fields)
        return f"@{self.kind}{{{self.key},\n{body}\n}}"

    def text(self) -> str:
        """One plain-text line: authors (year). Title. Venue, volume(number), pages. DOI / arXiv / URL."""
        names = [f"{given} {family}".strip() for family, given in self.authors]
        authors = names[0] if len(names) == 1 else ", ".join(names[:-1]) + (
            "," if len(names) > 2 else "") + " and " + names[-1]
        parts = [f"{authors} ({self.year}). {_plain(self.title)}."]
        where = ("In " if self.kind == "inproceedings" else "") + self.venue
        if self.kind == "techreport":
            where += " technical report"
        if self.volume:
            where += f", {self.volume}" + (f"({self.number})" if self.number else "")
        if self.pages:
            pages = self.pages.replace("--", "\u2013")
            where += f", {pages}" if self.kind == "article" else f", pp. {pages}"
        if self.address:
            where += f". {self.address}"
        if self.venue:
            parts.append(where + ".")
        links = [f"doi:{self.doi}" if self.doi else "", f"arXiv:{self.arxiv}" if self.arxiv else ""]
        if self.url and not self.doi and not self.arxiv:
            links.append(self.url)
        if any(links):
            parts.append(", ".join(link for link in links if link) + ".")
        return " ".join(parts)


def _plain(title: str) -> str:
    return title.replace("{", "").replace("}", "")


_LATEX = {"Ł": r"{\L}", "ł": r"{\l}", "ó": r"{\'o}", "é": r"{\'e}", "á": r"{\'a}", "ö": r'{\"o}',
          "ü": r'{\"u}', "–": "--"}


def _latex(value: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in value)


ACL = "Association for Computational Linguistics"
NEURIPS_PUBLISHER = "Curran Associates, Inc."

REFERENCES: dict[str, Reference] = {r.key: r for r in (
    # ------------------------------------------------------------------ the family
    Reference(
        "rosenblatt1958perceptron", "article", (("Rosenblatt", "Frank"),),
        "The Perceptron: A Probabilistic Model for Information Storage and Organization in the Brain",
        1958, "Psychological Review", "65", "6", "386--408", doi="10.1037/h0042519",
        used_for="attnlab.Perceptron: step activation, the perceptron learning rule",
    ),
    Reference(
        "rumelhart1986backprop", "article",
        (("Rumelhart", "David E."), ("Hinton", "Geoffrey E."), ("Williams", "Ronald J.")),
        "Learning Representations by Back-Propagating Errors", 1986, "Nature", "323", "6088",
        "533--536", doi="10.1038/323533a0",
        used_for="attnlab.MLPClassifier and the position-wise FFN: hidden layers trained by back-propagation",
    ),
    Reference(
        "vaswani2017attention", "inproceedings",
        (("Vaswani", "Ashish"), ("Shazeer", "Noam"), ("Parmar", "Niki"), ("Uszkoreit", "Jakob"),
         ("Jones", "Llion"), ("Gomez", "Aidan N."), ("Kaiser", "Łukasz"), ("Polosukhin", "Illia")),
        "Attention Is All You Need", 2017,
        "Advances in Neural Information Processing Systems 30 (NIPS 2017)", pages="5998--6008",
        publisher=NEURIPS_PUBLISHER, address="Long Beach, CA, USA", arxiv="1706.03762",
        url="https://proceedings.neurips.cc/paper/2017/hash/3f5ee243547dee91fbd053c1c4a845aa-Abstract.html",
        used_for="scaled dot-product and multi-head attention, the encoder-decoder Transformer",
    ),
    Reference(
        "devlin2019bert", "inproceedings",
        (("Devlin", "Jacob"), ("Chang", "Ming-Wei"), ("Lee", "Kenton"), ("Toutanova", "Kristina")),
        "{BERT}: Pre-training of Deep Bidirectional Transformers for Language Understanding", 2019,
        "Proceedings of the 2019 Conference of the North American Chapter of the Association for "
        "Computational Linguistics: Human Language Technologies, Volume 1 (Long and Short Papers)",
        pages="4171--4186", publisher=ACL, address="Minneapolis, Minnesota", doi="10.18653/v1/N19-1423",
        arxiv="1810.04805", used_for="BertModel and its heads: MLM + NSP pre-training, fine-tuning",
    ),
    Reference(
        "radford2018gpt", "techreport",
        (("Radford", "Alec"), ("Narasimhan", "Karthik"), ("Salimans", "Tim"), ("Sutskever", "Ilya")),
        "Improving Language Understanding by Generative Pre-Training", 2018, "OpenAI",
        url="https://cdn.openai.com/research-covers/language-unsupervised/language_understanding_paper.pdf",
        note="Technical report", used_for="GPT: decoder-only generative pre-training, then fine-tuning",
    ),
    Reference(
        "radford2019gpt2", "techreport",
        (("Radford", "Alec"), ("Wu", "Jeffrey"), ("Child", "Rewon"), ("Luan", "David"), ("Amodei", "Dario"),
         ("Sutskever", "Ilya")),
        "Language Models are Unsupervised Multitask Learners", 2019, "OpenAI",
        url="https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_"
            "learners.pdf",
        note="Technical report", used_for="GPT-2: pre-LN blocks, byte-level BPE, zero-shot prompting",
    ),
    Reference(
        "brown2020gpt3", "inproceedings",
        (("Brown", "Tom B."), ("Mann", "Benjamin"), ("Ryder", "Nick"), ("Subbiah", "Melanie"),
         ("Kaplan", "Jared"), ("Dhariwal", "Prafulla"), ("Neelakantan", "Arvind"), ("Shyam", "Pranav"),
         ("Sastry", "Girish"), ("Askell", "Amanda"), ("Agarwal", "Sandhini"), ("Herbert-Voss", "Ariel"),
         ("Krueger", "Gretchen"), ("Henighan", "Tom"), ("Child", "Rewon"), ("Ramesh", "Aditya"),
         ("Ziegler", "Daniel M."), ("Wu", "Jeffrey"), ("Winter", "Clemens"), ("Hesse", "Christopher"),
         ("Chen", "Mark"), ("Sigler", "Eric"), ("Litwin", "Mateusz"), ("Gray", "Scott"),
         ("Chess", "Benjamin"), ("Clark", "Jack"), ("Berner", "Christopher"), ("McCandlish", "Sam"),
         ("Radford", "Alec"), ("Sutskever", "Ilya"), ("Amodei", "Dario")),
        "Language Models are Few-Shot Learners", 2020,
        "Advances in Neural Information Processing Systems 33 (NeurIPS 2020)", pages="1877--1901",
        publisher=NEURIPS_PUBLISHER, arxiv="2005.14165",
        used_for="GPT-3: in-context zero-, one- and few-shot prompting",
    ),
    # ------------------------------------------------------------------ techniques
    Reference(
        "ba2016layernorm", "misc", (("Ba", "Jimmy Lei"), ("Kiros", "Jamie Ryan"), ("Hinton", "Geoffrey E.")),
        "Layer Normalization", 2016, "arXiv preprint", arxiv="1607.06450",
        used_for="LayerNorm in every block (post-LN: Transformer, BERT; pre-LN: GPT-2)",
    ),
    Reference(
        "hendrycks2016gelu", "misc", (("Hendrycks", "Dan"), ("Gimpel", "Kevin")),
        "Gaussian Error Linear Units ({GELU}s)", 2016, "arXiv preprint", arxiv="1606.08415",
        used_for="the GELU of BERT (exact) and GPT-2 (tanh approximation)",
    ),
    Reference(
        "he2016residual", "inproceedings",
        (("He", "Kaiming"), ("Zhang", "Xiangyu"), ("Ren", "Shaoqing"), ("Sun", "Jian")),
        "Deep Residual Learning for Image Recognition", 2016,
        "Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)",
        pages="770--778", doi="10.1109/CVPR.2016.90", arxiv="1512.03385",
        used_for="the residual connection x + Sublayer(x) around every attention and FFN",
    ),
    Reference(
        "sennrich2016bpe", "inproceedings",
        (("Sennrich", "Rico"), ("Haddow", "Barry"), ("Birch", "Alexandra")),
        "Neural Machine Translation of Rare Words with Subword Units", 2016,
        "Proceedings of the 54th Annual Meeting of the Association for Computational Linguistics "
        "(Volume 1: Long Papers)", pages="1715--1725", publisher=ACL, address="Berlin, Germany",
        doi="10.18653/v1/P16-1162", arxiv="1508.07909",
        used_for="byte-pair encoding (the byte-level BPE of GPT-2 and SmolLM2)",
    ),
    Reference(
        "schuster2012wordpiece", "inproceedings", (("Schuster", "Mike"), ("Nakajima", "Kaisuke")),
        "Japanese and Korean Voice Search", 2012,
        "2012 IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)",
        pages="5149--5152", doi="10.1109/ICASSP.2012.6289079",
        note="BERT takes its WordPiece vocabulary from Wu et al. 2016, arXiv:1609.08144",
        used_for="WordPiece, BERT's tokenizer",
    ),
    Reference(
        "papineni2002bleu", "inproceedings",
        (("Papineni", "Kishore"), ("Roukos", "Salim"), ("Ward", "Todd"), ("Zhu", "Wei-Jing")),
        "{BLEU}: a Method for Automatic Evaluation of Machine Translation", 2002,
        "Proceedings of the 40th Annual Meeting of the Association for Computational Linguistics",
        pages="311--318", publisher=ACL, address="Philadelphia, Pennsylvania, USA",
        doi="10.3115/1073083.1073135", used_for="BLEU, the translation score",
    ),
    Reference(
        "holtzman2020nucleus", "inproceedings",
        (("Holtzman", "Ari"), ("Buys", "Jan"), ("Du", "Li"), ("Forbes", "Maxwell"), ("Choi", "Yejin")),
        "The Curious Case of Neural Text Degeneration", 2020,
        "International Conference on Learning Representations (ICLR)", arxiv="1904.09751",
        used_for="nucleus (top-p) sampling in generation",
    ),
    Reference(
        "kobayashi2020attention", "inproceedings",
        (("Kobayashi", "Goro"), ("Kuribayashi", "Tatsuki"), ("Yokoi", "Sho"), ("Inui", "Kentaro")),
        "Attention is Not Only a Weight: Analyzing Transformers with Vector Norms", 2020,
        "Proceedings of the 2020 Conference on Empirical Methods in Natural Language Processing (EMNLP)",
        pages="7057--7075", publisher=ACL, address="Online", doi="10.18653/v1/2020.emnlp-main.574",
        arxiv="2004.10102", used_for="value-weighted attention ||alpha f(x)|| (attnlab.inspect.analysis)",
    ),
    Reference(
        "abnar2020rollout", "inproceedings", (("Abnar", "Samira"), ("Zuidema", "Willem")),
        "Quantifying Attention Flow in Transformers", 2020,
        "Proceedings of the 58th Annual Meeting of the Association for Computational Linguistics",
        pages="4190--4197", publisher=ACL, address="Online", doi="10.18653/v1/2020.acl-main.385",
        arxiv="2005.00928", used_for="attention rollout (attnlab.inspect.analysis)",
    ),
    Reference(
        "szegedy2016labelsmoothing", "inproceedings",
        (("Szegedy", "Christian"), ("Vanhoucke", "Vincent"), ("Ioffe", "Sergey"), ("Shlens", "Jonathon"),
         ("Wojna", "Zbigniew")),
        "Rethinking the Inception Architecture for Computer Vision", 2016,
        "Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)",
        pages="2818--2826", doi="10.1109/CVPR.2016.308", arxiv="1512.00567",
        used_for="label smoothing (the Transformer's epsilon_ls = 0.1)",
    ),
    Reference(
        "fan2018topk", "inproceedings", (("Fan", "Angela"), ("Lewis", "Mike"), ("Dauphin", "Yann")),
        "Hierarchical Neural Story Generation", 2018,
        "Proceedings of the 56th Annual Meeting of the Association for Computational Linguistics "
        "(Volume 1: Long Papers)", pages="889--898", publisher=ACL, address="Melbourne, Australia",
        doi="10.18653/v1/P18-1082", arxiv="1805.04833", used_for="top-k sampling in generation",
    ),
    Reference(
        "kingma2015adam", "inproceedings", (("Kingma", "Diederik P."), ("Ba", "Jimmy")),
        "Adam: A Method for Stochastic Optimization", 2015,
        "International Conference on Learning Representations (ICLR)", arxiv="1412.6980",
        used_for="the Adam optimizer of every training loop",
    ),
    Reference(
        "su2024rope", "article",
        (("Su", "Jianlin"), ("Ahmed", "Murtadha"), ("Lu", "Yu"), ("Pan", "Shengfeng"), ("Bo", "Wen"),
         ("Liu", "Yunfeng")),
        "{RoFormer}: Enhanced Transformer with Rotary Position Embedding", 2024, "Neurocomputing", "568",
        pages="127063", doi="10.1016/j.neucom.2023.127063", arxiv="2104.09864",
        used_for="rotary positions of the Llama family (SmolLM2)",
    ),
    Reference(
        "zhang2019rmsnorm", "inproceedings", (("Zhang", "Biao"), ("Sennrich", "Rico")),
        "Root Mean Square Layer Normalization", 2019,
        "Advances in Neural Information Processing Systems 32 (NeurIPS 2019)", arxiv="1910.07467",
        used_for="RMSNorm of the Llama family",
    ),
    Reference(
        "shazeer2020glu", "misc", (("Shazeer", "Noam"),), "{GLU} Variants Improve Transformer", 2020,
        "arXiv preprint", arxiv="2002.05202", used_for="the SwiGLU feed-forward of the Llama family",
    ),
    Reference(
        "ainslie2023gqa", "inproceedings",
        (("Ainslie", "Joshua"), ("Lee-Thorp", "James"), ("de Jong", "Michiel"), ("Zemlyanskiy", "Yury"),
         ("Lebrón", "Federico"), ("Sanghai", "Sumit")),
        "{GQA}: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints", 2023,
        "Proceedings of the 2023 Conference on Empirical Methods in Natural Language Processing",
        pages="4895--4901", publisher=ACL, address="Singapore", doi="10.18653/v1/2023.emnlp-main.298",
        arxiv="2305.13245", used_for="grouped-query attention (SmolLM2: 9 query heads, 3 key/value heads)",
    ),
    Reference(
        "kaplan2020scaling", "misc",
        (("Kaplan", "Jared"), ("McCandlish", "Sam"), ("Henighan", "Tom"), ("Brown", "Tom B."),
         ("Chess", "Benjamin"), ("Child", "Rewon"), ("Gray", "Scott"), ("Radford", "Alec"), ("Wu", "Jeffrey"),
         ("Amodei", "Dario")),
        "Scaling Laws for Neural Language Models", 2020, "arXiv preprint", arxiv="2001.08361",
        used_for="the FLOPs-per-token accounting of attnlab compare (2 FLOPs per multiply-add)",
    ),
)}

# What `attnlab cite NAME` prints: the family by model, then each technique.
TOPICS: dict[str, tuple[str, ...]] = {
    "perceptron": ("rosenblatt1958perceptron",),
    "mlp": ("rumelhart1986backprop",),
    "transformer": ("vaswani2017attention",),
    "bert": ("devlin2019bert",),
    "gpt": ("radford2018gpt",),
    "gpt2": ("radford2019gpt2",),
    "gpt3": ("brown2020gpt3",),
    "layernorm": ("ba2016layernorm",),
    "gelu": ("hendrycks2016gelu",),
    "residual": ("he2016residual",),
    "bpe": ("sennrich2016bpe",),
    "wordpiece": ("schuster2012wordpiece",),
    "bleu": ("papineni2002bleu",),
    "nucleus": ("holtzman2020nucleus",),
    "value-weighted": ("kobayashi2020attention",),
    "rollout": ("abnar2020rollout",),
    "label-smoothing": ("szegedy2016labelsmoothing",),
    "top-k": ("fan2018topk",),
    "adam": ("kingma2015adam",),
    "rope": ("su2024rope",),
    "rmsnorm": ("zhang2019rmsnorm",),
    "swiglu": ("shazeer2020glu",),
    "gqa": ("ainslie2023gqa",),
    "flops": ("kaplan2020scaling",),
}
MODELS = ("perceptron", "mlp", "transformer", "bert", "gpt", "gpt2", "gpt3")
GROUPS: dict[str, tuple[str, ...]] = {
    "all": tuple(REFERENCES),
    "models": tuple(key for name in MODELS for key in TOPICS[name]),
    "techniques": tuple(key for name, keys in TOPICS.items() if name not in MODELS for key in keys),
}
FORMATS = ("bibtex", "text")


def select(names: list[str] | tuple[str, ...]) -> list[Reference]:
    """The references for topic names (``bert``, ``rollout``), groups (``all``, ``models``,
    ``techniques``) or BibTeX keys, in order, without repeats."""
    keys: list[str] = []
    for name in names or ["all"]:
        lowered = name.lower()
        if lowered in GROUPS:
            found = GROUPS[lowered]
        elif lowered in TOPICS:
            found = TOPICS[lowered]
        elif name in REFERENCES:
            found = (name,)
        else:
            choices = ", ".join([*GROUPS, *TOPICS])
            raise AttnlabError(f"Unknown reference {name!r}; choose from: {choices} (or a BibTeX key).")
        keys += [k for k in found if k not in keys]
    return [REFERENCES[k] for k in keys]


def cite(names: list[str] | tuple[str, ...] = ("all",), fmt: str = "bibtex") -> str:
    """The chosen references as BibTeX entries or text lines."""
    if fmt not in FORMATS:
        raise AttnlabError(f"--format must be one of {list(FORMATS)}. Got {fmt!r}.")
    chosen = select(names)
    if fmt == "bibtex":
        return "\n\n".join(r.bibtex() for r in chosen)
    return "\n".join(f"[{r.key}] {r.text()}" for r in chosen)
