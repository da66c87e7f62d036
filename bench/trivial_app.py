"""The ceiling of the serving benchmark: a FastAPI app with one trivial async endpoint."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}
