# The table of scripts/bench-ab.sh output: per benchmark row, the median over
# rounds of each round's p50, before and after, and their ratio.
#   python3 scripts/bench_ab_table.py ab.out
import re,sys,statistics as st
rows={}
order=[]
def us(v,u): return float(v)*{'µs':1,'us':1,'ms':1e3,'s':1e6}[u]
for l in open(sys.argv[1]):
    m=re.match(r'(before|after) r(\d+) +(\S+) authors +(\S+) .*p50= *([\d.]+)(µs|ms|s) p99= *([\d.]+)(µs|ms|s)',l)
    if m:
        tree,rnd,model,kind=m.group(1),m.group(2),m.group(3),m.group(4)
        key=('planner',model,kind)
        v=us(m.group(5),m.group(6))
    else:
        m=re.match(r'(before|after) r(\d+) (small|medium) +(\d+) +\d+ +([\d.]+) +([\d.]+)',l)
        if not m: continue
        tree,rnd,model,h=m.group(1),m.group(2),m.group(3),m.group(4)
        key=('kernels f+b',model,'H '+h); v=float(m.group(6))
    if key not in rows: rows[key]={'before':[],'after':[]}; order.append(key)
    rows[key][tree].append(v)
print('| benchmark | model | planner / horizon | before p50 (µs), median of rounds | after p50 (µs) | after / before | rounds |')
print('|---|---|---|---|---|---|---|')
for k in order:
    b,a=rows[k]['before'],rows[k]['after']
    if not b or not a: continue
    mb,ma=st.median(b),st.median(a)
    print(f'| {k[0]} | {k[1]} | {k[2]} | {mb:,.1f} | {ma:,.1f} | {ma/mb:.3f} | {len(b)}/{len(a)} |')
