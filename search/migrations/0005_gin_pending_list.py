"""PostgreSQL: a short pending list for the GIN index on document (search.engines,
GIN_PENDING_LIST_KB): every full-text scan reads the list through, and by default it holds
over 10,000 messages before it is moved into the index. SQLite needs nothing.
"""

from django.db import migrations

from search import engines


class Migration(migrations.Migration):
    dependencies = [("search", "0004_walk_indexes")]

    operations = [migrations.RunPython(engines.limit_pending_list, engines.unlimit_pending_list)]
