"""`chatrec tune` with the ReDial join as it was before 2026-12-06: no directors, cast or runtime copied to the
joined items (the control for the people join in docs/RESULTS.md, 2026-12-06). Use its own data directory:

    CHATREC_DATA_DIR=D python scripts/redial_no_people.py tune --conversations ... --movies ... --json
"""

import sys
from dataclasses import replace

from chatrec.eval import redial

_join = redial.join_catalogue


def join(movies, enriched):
    items, counts = _join(movies, enriched)
    return [replace(it, directors=(), cast=(), runtime=None) for it in items], counts


redial.join_catalogue = join

if __name__ == "__main__":
    from chatrec.cli import main

    sys.exit(main(sys.argv[1:]))
