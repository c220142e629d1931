"""Make a student notebook: mk.py OUT.ipynb BASE.ipynb|- CELLFILE...  (CELLFILE: python; cells split on '# %%')."""
import sys, nbformat
out, base, *files = sys.argv[1:]
nb = nbformat.read(base, as_version=4) if base != "-" else nbformat.v4.new_notebook()
for f in files:
    for src in open(f).read().split("# %%\n"):
        if src.strip():
            nb.cells.append(nbformat.v4.new_code_cell(src))
import os; os.makedirs(os.path.dirname(out), exist_ok=True)
nbformat.write(nb, out)
