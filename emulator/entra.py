"""Entra ID endpoints of the local tenant: OpenID discovery, signing keys, and the token endpoint.

msal (with ``instance_discovery=False``) reads ``{authority}/v2.0/.well-known/openid-configuration``
and posts client_credentials to its ``token_endpoint``; the checks live in ``emulator.identity``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from emulator.http import Ctx, HttpError, Resp, Router, json_resp

_TENANT = r"/(?P<tenant>[^/]+)"


async def openid_configuration(ctx: Ctx) -> Resp:
    _check_tenant(ctx)
    return json_resp(ctx.tenant.identity.openid_configuration(ctx.req.base_url), content_type="application/json")


async def keys(ctx: Ctx) -> Resp:
    _check_tenant(ctx)
    return json_resp(ctx.tenant.identity.jwks(), content_type="application/json")


async def token(ctx: Ctx) -> Resp:
    content_type = (ctx.req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise HttpError(400, "invalid_request", "AADSTS900144: The request body must contain the following "
                        "parameter: 'grant_type'. (The body must be application/x-www-form-urlencoded.)")
    form = dict(parse_qsl(ctx.req.body.decode("utf-8", "replace"), keep_blank_values=True))
    body = ctx.tenant.identity.token(form, ctx.params["tenant"], ctx.req.base_url)
    return json_resp(body, content_type="application/json; charset=utf-8",
                     headers=[("cache-control", "no-store, no-cache"), ("pragma", "no-cache")])


def _check_tenant(ctx: Ctx) -> None:
    segment = ctx.params["tenant"].lower()
    known = {ctx.tenant.tenant_id.lower(), (ctx.state.meta("tenant_domain") or "").lower()}
    if segment not in known:
        raise HttpError(400, "invalid_tenant", f"AADSTS90002: Tenant '{ctx.params['tenant']}' not found.")


def register(router: Router) -> None:
    router.add("GET", _TENANT + r"/v2\.0/\.well-known/openid-configuration", openid_configuration,
               name="entra.openid", surface="entra")
    router.add("GET", _TENANT + r"/\.well-known/openid-configuration", openid_configuration,
               name="entra.openid", surface="entra")
    router.add("GET", _TENANT + r"/discovery/v2\.0/keys", keys, name="entra.keys", surface="entra")
    router.add("POST", _TENANT + r"/oauth2/v2\.0/token", token, name="entra.token", surface="entra")
