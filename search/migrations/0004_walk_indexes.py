"""PostgreSQL: an index-only walk for the per-room plan, and an author index for from:.

The per-room plan (search.engines) reads each readable room newest first until the window
fills; through the heap, each entry it read cost a page of its own, 30,000 buffers for a
phrase of common words that are rarely adjacent at a million entries. The (room_id, at_us)
index that also carries the document and the filters' columns answers it from the index's
pages (1,500 buffers), as an index-only scan; it holds the entries whose document fits a
btree row (search.engines.DOCUMENT_IN_INDEX_BYTES), a second partial index the others (a
document past 2,704 bytes failed the insert). from: reads the author's entries newest first
instead of every match of the words. SQLite needs nothing (docs/performance.md, "The
per-room walk from an index, from: by author, a short GIN pending list").
"""

from django.db import migrations

from search import engines


class Migration(migrations.Migration):
    dependencies = [("search", "0003_document_index")]

    operations = [migrations.RunPython(engines.create_walk_indexes, engines.drop_walk_indexes)]
