from django.apps import AppConfig


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self) -> None:
        from accounts import refusals
        from chat import access, moderation, testhooks

        testhooks.install()

        access.connect()  # access that ends (accounts.revocation) reaches open sockets
        refusals.register(moderation.user_ban_refusal)  # a ban refuses tokens and every /api/ call
