"""The flow server's routes for ``flow user``: each calls the :class:`flow.ops.users.UserOps`
method the CLI calls in standalone mode, on the server's store. Only an admin reaches them
(:data:`flow.ops.api.ROLES`); a new token is in the answer once and never again.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from flow.server.routes import ok, ops_of

users = APIRouter(prefix="/users", tags=["users"])


class UserBody(BaseModel):
    name: str
    role: str = Field(description="viewer, operator or admin")


@users.post("", summary="let a person use this server as a role; the token is shown once (flow user add)")
def add_user(body: UserBody, request: Request):
    return ok(ops_of(request).user_add(body.name, body.role))


@users.get("", summary="every user: name, role, created, last used, never a token (flow user list)")
def list_users(request: Request):
    return ok(ops_of(request).user_list())


@users.delete("/{name}", summary="take a user away; its token stops working (flow user remove)")
def remove_user(name: str, request: Request):
    return ok(ops_of(request).user_remove(name))


@users.post("/{name}/rotate", summary="a new token for a user, shown once; the old one stops working "
                                      "(flow user rotate)")
def rotate_user(name: str, request: Request):
    return ok(ops_of(request).user_rotate(name))


ROUTERS = [users]
