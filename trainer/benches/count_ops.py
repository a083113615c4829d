#!/usr/bin/env python3
"""Ops per update from two callgrind profiles of the updates bench.

    B=target/debug/deps/updates-<hash>   # cargo build -p dream-mpc-trainer --bench updates
    for n in 1 3; do valgrind --tool=callgrind --callgrind-out-file=cg.$n \
        $B --size tiny --path fused --n $n --no-refresh; done
    python3 trainer/benches/count_ops.py cg.1 cg.3 [top]

Counts the calls into ATen's dispatcher entry points (`at::_ops::<op>::call`)
in each profile; the difference divided by 2 is one update (the two runs
differ by 2 timed updates, set-up and warm-up cancel). "compute" leaves out
view, shape and other metadata ops. Sizes do not change the count, hence
`--size tiny` (valgrind runs ~100x slower). On the CPU the count includes
ATen's casts of scalars to 0-d float tensors (`_to_copy`), which a GPU does
not launch.
"""
import collections
import re
import sys

META = set("""as_strided view t transpose_int slice_Tensor reshape _reshape_alias
resolve_conj resolve_neg empty_memory_format empty_strided expand unsqueeze
select_int narrow detach alias squeeze_dim squeeze unbind_int split_Tensor
permute contiguous to_dtype to_dtype_layout lift_fresh set_requires_grad
requires_grad_ is_pinned view_as expand_as result_type_Scalar _unsafe_view
flatten_using_ints movedim_int _local_scalar_dense item""".split())
ENTRY = re.compile(r'at::_ops::(\w+)::call\(')


def count(path):
    names, calls, callee = {}, collections.Counter(), None

    def name_of(spec):
        m = re.match(r'\((\d+)\)(?: (.*))?', spec)
        if not m:
            return spec
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), '')

    with open(path, errors='replace') as f:
        for line in f:
            if line.startswith('cfn='):
                callee = name_of(line[4:].strip())
            elif line.startswith('fn='):
                name_of(line[3:].strip())
            elif line.startswith('calls=') and callee:
                m = ENTRY.search(callee)
                if m:
                    calls[m.group(1)] += int(line[6:].split()[0])
    return calls


def main():
    a, b = count(sys.argv[1]), count(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    per = {op: (b[op] - a[op]) / 2 for op in set(a) | set(b)}
    total = sum(per.values())
    compute = sum(n for op, n in per.items() if op not in META)
    print(f"per update: {total:.0f} dispatcher calls, {compute:.0f} compute ops")
    for op, n in sorted(per.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{n:8.1f} {op}")


if __name__ == '__main__':
    main()
