"""PostgreSQL: the GIN index holds the words only again; the rooms are the btree's.

Migration 0002 put the room into the GIN index (btree_gin), for one branch per room. At a
million entries the planner then answered a one-scan query's `room_id IN (the 50 rooms)` as
50 GIN scans, each reading the words' posting lists again, and, after an ANALYZE, the
per-room plan's branches as per-room GIN scans: 130-400 ms where the GIN scan of the words
ANDed with the rooms' rows of the (room_id, at_us) btree, or the btree read backwards,
take 10-60 ms (docs/performance.md, "Plans that ANALYZE cannot flip"). SQLite needs nothing.
"""

from django.db import migrations

from search import engines


class Migration(migrations.Migration):
    dependencies = [("search", "0002_room_document_index")]

    operations = [migrations.RunPython(engines.create_document_index, engines.create_room_document_index)]
