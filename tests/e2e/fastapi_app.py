"""The upstream API of the browser tests: a FastAPI application in the shape of the
seeds' backend (Bearer-protected items, a public health check). It records the Bearer
tokens it is given, so the tests can see what sessiongate sent.

    python -m uvicorn fastapi_app:app --app-dir tests/e2e --port 8000
"""
from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

app = FastAPI(title="Items", version="0.1.0")
bearer = HTTPBearer()
items: list["Item"] = []
tokens: list[str] = []


class Item(BaseModel):
    name: str


def token(credentials: HTTPAuthorizationCredentials = Depends(bearer)) -> str:
    tokens.append(credentials.credentials)
    return credentials.credentials


@app.get("/health")
def health() -> dict:
    return {"ok": True}


@app.get("/items", response_model=list[Item])
def list_items(_: str = Depends(token)) -> list[Item]:
    return items


@app.post("/items", response_model=Item, status_code=201)
def create_item(item: Item, _: str = Depends(token)) -> Item:
    items.append(item)
    return item


@app.get("/seen-tokens", include_in_schema=False)
def seen_tokens() -> dict:
    return {"tokens": tokens}
