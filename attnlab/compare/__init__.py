"""The Transformer, BERT and GPT side by side, and the papers behind each.

    from attnlab.compare import Size, compare, format_comparison
    print(format_comparison(compare(Size(d_model=64, n_layers=2), repeats=2)))

build.py builds the three at one :class:`Size`; parameters.py and flops.py count them by
formula; timing.py times them; comparison.py gathers it all as data; table.py prints it;
references.py holds the citations (``attnlab cite``).
"""

from attnlab.compare.build import ARCHITECTURES, Size, build, example_inputs, positions
from attnlab.compare.comparison import Comparison, compare, describe_loaded
from attnlab.compare.flops import (
    FLOPS_FORMULAS,
    closed_form_flops_per_token,
    flops_formula_check,
    forward_flops,
)
from attnlab.compare.parameters import PARAMETER_FORMULAS, closed_form_parameters, parameter_count
from attnlab.compare.table import format_comparison
from attnlab.compare.timing import Throughput, measure_throughput

__all__ = [
    "ARCHITECTURES",
    "FLOPS_FORMULAS",
    "PARAMETER_FORMULAS",
    "Comparison",
    "Size",
    "Throughput",
    "build",
    "closed_form_flops_per_token",
    "closed_form_parameters",
    "compare",
    "describe_loaded",
    "example_inputs",
    "flops_formula_check",
    "format_comparison",
    "forward_flops",
    "measure_throughput",
    "parameter_count",
    "positions",
]
