"""Speed: the benchmarks that measure attnlab's paths (:mod:`attnlab.inference`) against the references.

    suites      the benchmarks (index of decode_suites, encoder_suites; what they report in
                comparison): attnlab vs transformers at its fastest dtype, same process, weights
                and inputs, real weights first
    memory      peak RSS of each workload; the KV-cache size formula checked
    report      interleaved timing, machine state, rows in benchmarks/RESULTS.md

Every speed claim comes with the reference's figure from the same run and the ratio;
every path (fp32 included) with its measured agreement with the fp32 answer: greedy tokens
equal, max logit difference and top-1 agreement, or an encoder's output difference.
"""
