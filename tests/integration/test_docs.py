"""test_docs.py — the SQL examples in sql/README.md run as written against
the installed schema (each block in its own transaction, rolled back)."""

import os
import re

from harness import SQLError


def sql_blocks():
    path = os.path.join(os.environ.get("HERALD_SRCDIR", "."), "sql", "README.md")
    with open(path, encoding="utf-8") as f:
        return re.findall(r"```sql\n(.*?)```", f.read(), flags=re.S)


def test_dba_guide_sql_examples_run(ctx):
    blocks = sql_blocks()
    assert len(blocks) >= 4, f"expected the guide's SQL examples, found {len(blocks)} blocks"
    failed = []
    for block in blocks:
        try:
            ctx.pg.sql("BEGIN;\n" + block + "\nROLLBACK;")
        except SQLError as e:
            failed.append(f"{block.strip()[:80]!r}: {e}")
    assert not failed, "examples that do not run:\n" + "\n".join(failed)
