"""The API's routers, one per concern; `create_app` includes them."""
