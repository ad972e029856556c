from django.apps import AppConfig


class SearchConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "search"

    def ready(self) -> None:
        from chat import services
        from search import indexer, metrics

        # Every stored room change reaches the index (search.indexer); chat knows no more of search.
        services.on_room_change_stored(indexer.notify)
        metrics.register(indexer.lag)
