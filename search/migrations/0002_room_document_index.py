"""PostgreSQL: the room filter inside the full-text index scan (issue 19's speed).

A GIN index on (room_id, document), with the btree_gin extension for the text column: a
query's `room_id IN (the readable rooms)` and `document @@ query` are answered together in
the index, so a common word costs the matches in the user's rooms, not every match in every
room before the room filter (docs/performance.md). It replaces the GIN on document alone (a
multi-column GIN serves a query on any of its columns). SQLite needs nothing here: its FTS5
table holds each entry's room as a token already.
"""

from django.db import migrations

from search import engines


class Migration(migrations.Migration):
    dependencies = [("search", "0001_initial")]

    operations = [migrations.RunPython(engines.create_room_document_index, engines.drop_room_document_index)]
