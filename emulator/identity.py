"""Entra ID for the local tenant: certificates, access tokens, and checking them on every call.

The tenant keeps, in ``DIR/certs``: a CA (``ca.pem``, what clients trust), the HTTPS server's
certificate (for ``localhost``, ``127.0.0.1`` and ``::1``), the token-signing key (published
as JWKS) and one certificate with private key per app registration (what an app authenticates
with). Tokens are RS256 JWTs shaped like Entra's v1 app-only tokens: ``aud`` is the resource
(``https://graph.microsoft.com`` or the SharePoint origin), ``roles`` the app's application
permissions. Graph and SharePoint each refuse the other's tokens.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from emulator.http import Caller, HttpError, Req

if TYPE_CHECKING:
    from emulator.app import Tenant

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
SHAREPOINT_APP_ID = "00000003-0000-0ff1-ce00-000000000000"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Entra accepts client assertions with a little clock skew; msal reuses one for up to 10 minutes.
CLOCK_SKEW = 300


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def self_signed(common_name: str, key: rsa.RSAPrivateKey, *, days: int = 3650) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(days=1)).not_valid_after(_now() + dt.timedelta(days=days))
            .sign(key, hashes.SHA256()))


def make_app_certificate(common_name: str) -> tuple[str, str]:
    """A self-signed app certificate as Entra app registrations use: (PEM cert + key, PEM cert)."""
    key = _key()
    cert = self_signed(common_name, key, days=730)
    return (_pem_cert(cert) + _pem_key(key)).decode(), _pem_cert(cert).decode()


class Identity:
    """Owns the tenant's keys and certificates; issues and checks access tokens."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.dir = tenant.config.data_dir / "certs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ensure_ca_and_server()
        self._signing_key, self._signing_cert = self._ensure_signing_key()
        self.kid = _b64url(self._signing_cert.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is SHA-1 by spec
        self._public_key = self._signing_cert.public_key()

    # ------------------------------------------------------------------ files
    @property
    def ca_path(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def server_cert_path(self) -> Path:
        return self.dir / "server.pem"

    @property
    def server_key_path(self) -> Path:
        return self.dir / "server.key"

    def _ensure_ca_and_server(self) -> None:
        if self.ca_path.exists() and self.server_cert_path.exists() and self.server_key_path.exists():
            return
        ca_key = _key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cartif local tenant CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(_now() - dt.timedelta(days=1)).not_valid_after(_now() + dt.timedelta(days=3650))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False,
                                           encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
        server_key = _key()
        server = (x509.CertificateBuilder()
                  .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                  .issuer_name(ca_name).public_key(server_key.public_key())
                  .serial_number(x509.random_serial_number())
                  .not_valid_before(_now() - dt.timedelta(days=1)).not_valid_after(_now() + dt.timedelta(days=825))
                  .add_extension(x509.SubjectAlternativeName([
                      x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                      x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
                  .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                  .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                  .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                 critical=False)
                  .sign(ca_key, hashes.SHA256()))
        self.server_key_path.write_bytes(_pem_key(server_key))
        self.server_key_path.chmod(0o600)
        self.server_cert_path.write_bytes(_pem_cert(server))
        self.ca_path.write_bytes(_pem_cert(ca))

    def _ensure_signing_key(self) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key_path, cert_path = self.dir / "signing.key", self.dir / "signing.pem"
        if not key_path.exists() or not cert_path.exists():
            key = _key()
            key_path.write_bytes(_pem_key(key))
            key_path.chmod(0o600)
            cert_path.write_bytes(_pem_cert(self_signed("accounts.accesscontrol.local", key)))
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        return loaded, x509.load_pem_x509_certificate(cert_path.read_bytes())

    def write_app_certificate(self, name: str, pem_with_key: str) -> Path:
        path = self.dir / f"app-{name}.pem"
        path.write_text(pem_with_key)
        path.chmod(0o600)
        return path

    # ------------------------------------------------------------------ discovery
    def authority(self, base_url: str) -> str:
        return f"{base_url}/{self.tenant.tenant_id}"

    def openid_configuration(self, base_url: str) -> dict[str, Any]:
        authority = self.authority(base_url)
        return {
            "token_endpoint": f"{authority}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                      "client_secret_basic"],
            "jwks_uri": f"{base_url}/{self.tenant.tenant_id}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{authority}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base_url}/oidc/userinfo",
            "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{authority}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{authority}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "roles", "appid"],
            "kerberos_endpoint": f"{authority}/kerberos",
            "tenant_region_scope": "AS",
            "cloud_instance_name": "localhost",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def jwks(self) -> dict[str, Any]:
        numbers = self._signing_key.public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        der = self._signing_cert.public_bytes(serialization.Encoding.DER)
        return {"keys": [{"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": _b64url(n),
                          "e": _b64url(e), "x5c": [base64.b64encode(der).decode()],
                          "issuer": f"https://sts.windows.net/{self.tenant.tenant_id}/"}]}

    # ------------------------------------------------------------------ token endpoint
    def resource_for_scope(self, scope: str, base_url: str) -> tuple[str, str]:
        """Map a ``…/.default`` scope to (audience claim, surface); unknown resources are 400."""
        scopes = [s for s in scope.split() if s not in ("openid", "profile", "offline_access")]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise HttpError(400, "invalid_scope",
                            f"AADSTS1002012: The provided value for scope {scope} is not valid. Client credential "
                            "flows must have a scope value with /.default suffixed to the resource identifier "
                            "(application ID URI).")
        resource = scopes[0][: -len("/.default")].rstrip("/")
        if resource in (GRAPH_RESOURCE, GRAPH_APP_ID):
            return GRAPH_RESOURCE, "graph"
        sharepoint = {self.sharepoint_resource(base_url), self.sharepoint_resource(self.tenant.base_url),
                      SHAREPOINT_APP_ID}
        if resource in sharepoint:
            return self.sharepoint_resource(self.tenant.base_url), "sharepoint"
        api = self.tenant.state.api_for_resource(resource)
        if api is not None:
            # An API exposed by an app registration: v1 tokens (the default accessTokenAcceptedVersion)
            # carry the resource as requested in ``aud``: the Application ID URI or the client id.
            return resource, f"api:{api[0]}"
        raise HttpError(400, "invalid_resource",
                        f"AADSTS500011: The resource principal named {resource} was not found in the tenant "
                        f"named {self.tenant.tenant_id}. This can happen if the application has not been "
                        "installed by the administrator of the tenant or consented to by any user in the tenant.")

    @staticmethod
    def sharepoint_resource(base_url: str) -> str:
        return base_url.rstrip("/")

    def token(self, form: dict[str, str], tenant_segment: str, base_url: str) -> dict[str, Any]:
        """The client_credentials grant: check the client, then issue a token for the scope's resource."""
        if tenant_segment.lower() not in (self.tenant.tenant_id.lower(),
                                          (self.tenant.state.meta("tenant_domain") or "").lower()):
            raise HttpError(400, "invalid_request",
                            f"AADSTS90002: Tenant '{tenant_segment}' not found. Check to make sure you have the "
                            "correct tenant ID and are signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            raise HttpError(400, "unsupported_grant_type",
                            "AADSTS70003: The app requested an unsupported grant type "
                            f"'{form.get('grant_type', '')}'. This tenant supports client_credentials only.")
        client_id = form.get("client_id", "")
        app = self.tenant.state.get_app(client_id)
        if app is None:
            raise HttpError(400, "unauthorized_client",
                            f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
                            f"directory '{self.tenant.tenant_id}'.")
        token_endpoint = f"{self.authority(base_url)}/oauth2/v2.0/token"
        if form.get("client_assertion"):
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise HttpError(400, "invalid_request",
                                "AADSTS50027: client_assertion_type must be "
                                f"'{ASSERTION_TYPE}'.")
            self._check_assertion(form["client_assertion"], app.client_id, app.cert_pem, token_endpoint)
            method = "2"
        elif form.get("client_secret"):
            given = hashlib.sha256(form["client_secret"].encode()).hexdigest()
            if not app.secret_sha256 or not hmac.compare_digest(given, app.secret_sha256):
                raise HttpError(401, "invalid_client",
                                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                                f"in the request is the client secret value, not the client secret ID, for a "
                                f"secret added to app '{client_id}'.")
            method = "1"
        else:
            raise HttpError(401, "invalid_client",
                            "AADSTS7000218: The request body must contain the following parameter: "
                            "'client_assertion' or 'client_secret'.")
        audience, surface = self.resource_for_scope(form.get("scope", ""), base_url)
        lifetime = self.tenant.config.token_lifetime
        now = int(time.time())
        claims = {
            "aud": audience, "iss": f"https://sts.windows.net/{self.tenant.tenant_id}/", "iat": now,
            "nbf": now, "exp": now + lifetime, "aio": uuid.uuid4().hex, "app_displayname": app.display_name,
            "appid": app.client_id, "appidacr": method, "idp": f"https://sts.windows.net/{self.tenant.tenant_id}/",
            "idtyp": "app", "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, app.client_id)),
            "roles": list(app.roles), "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, app.client_id)),
            "tid": self.tenant.tenant_id, "uti": _b64url(uuid.uuid4().bytes), "ver": "1.0",
        }
        if surface.startswith("api:"):
            # For an app's own API, ``roles`` holds the app roles granted to the client on that API
            # (app role assignments), and is absent when none is granted.
            granted = self.tenant.state.assigned_roles(app.client_id, surface[4:])
            if granted:
                claims["roles"] = granted
            else:
                del claims["roles"]
        access_token = jwt.encode(claims, self._signing_key, algorithm="RS256",
                                  headers={"kid": self.kid, "x5t": self.kid, "typ": "JWT"})
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                "access_token": access_token}

    def _check_assertion(self, assertion: str, client_id: str, cert_pem: str | None, token_endpoint: str) -> None:
        def refuse(code: str, text: str) -> HttpError:
            return HttpError(401, "invalid_client", f"{code}: {text}")

        if not cert_pem:
            raise refuse("AADSTS700027", f"The certificate with identifier used to sign the client assertion is "
                                         f"not registered on application {client_id}.")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise refuse("AADSTS50012", f"Client assertion failed signature validation: {exc}") from exc
        if header.get("alg") not in ("RS256", "PS256"):
            raise refuse("AADSTS5002730", f"Invalid JWT token. Unsupported key for the signing algorithm "
                                          f"{header.get('alg')}.")
        public_key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
        try:
            claims = jwt.decode(assertion, public_key, algorithms=["RS256", "PS256"],  # type: ignore[arg-type]
                                audience=token_endpoint, leeway=CLOCK_SKEW,
                                options={"require": ["exp", "aud", "iss", "sub"]})
        except jwt.ExpiredSignatureError as exc:
            raise refuse("AADSTS700024", "Client assertion is not within its valid time range.") from exc
        except jwt.InvalidAudienceError as exc:
            raise refuse("AADSTS50013", f"Assertion audience claim does not match the required value. The "
                                        f"required value is {token_endpoint}.") from exc
        except jwt.InvalidSignatureError as exc:
            raise refuse("AADSTS700027", "Client assertion contains an invalid signature.") from exc
        except jwt.PyJWTError as exc:
            raise refuse("AADSTS50012", f"Client assertion failed validation: {exc}") from exc
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise refuse("AADSTS700021", "Client assertion application identifier doesn't match "
                                         "'client_id' parameter. Review the documentation at "
                                         "https://docs.microsoft.com/en-us/azure/active-directory/develop/"
                                         "active-directory-certificate-credentials .")

    # ------------------------------------------------------------------ checking tokens
    def authenticate(self, req: Req, surface: str) -> Caller:
        """The caller of a Graph or SharePoint request, or 401 with ``WWW-Authenticate``."""
        header = req.headers.get("authorization") or ""
        challenge = self._challenge(surface)
        if not header.lower().startswith("bearer "):
            raise HttpError(401, "InvalidAuthenticationToken", "Access token is empty.", headers=challenge,
                            sp_code="-2147024891, System.UnauthorizedAccessException")
        raw = header[7:].strip()
        expected = GRAPH_RESOURCE if surface == "graph" else self.sharepoint_resource(self.tenant.base_url)
        try:
            claims = jwt.decode(raw, self._public_key, algorithms=["RS256"],  # type: ignore[arg-type]
                                options={"verify_aud": False, "require": ["exp", "aud", "appid"]})
        except jwt.ExpiredSignatureError as exc:
            raise HttpError(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.",
                            headers=[*challenge[:-1], (challenge[-1][0], challenge[-1][1] + ', error="invalid_token"'
                                                       ', error_description="The token is expired"')],
                            sp_code="-2147024891, System.UnauthorizedAccessException") from exc
        except jwt.PyJWTError as exc:
            raise HttpError(401, "InvalidAuthenticationToken", "Invalid signature." if isinstance(
                exc, jwt.InvalidSignatureError) else f"IDX14100: JWT is not well formed: {type(exc).__name__}.",
                            headers=challenge, sp_code="-2147024891, System.UnauthorizedAccessException") from exc
        if claims.get("aud") != expected or claims.get("tid") != self.tenant.tenant_id:
            raise HttpError(401, "InvalidAuthenticationToken", "Invalid audience.", headers=challenge,
                            sp_code="-2147024891, System.UnauthorizedAccessException")
        app = self.tenant.state.get_app(str(claims["appid"]))
        if app is None:
            raise HttpError(401, "InvalidAuthenticationToken", "The application no longer exists.",
                            headers=challenge, sp_code="-2147024891, System.UnauthorizedAccessException")
        return Caller(app=app, audience=surface, roles=frozenset(claims.get("roles") or ()), claims=claims)

    def _challenge(self, surface: str) -> list[tuple[str, str]]:
        authority = f"https://login.microsoftonline.com/{self.tenant.tenant_id}/oauth2/authorize"
        if surface == "graph":
            value = f'Bearer realm="", authorization_uri="{authority}", client_id="{GRAPH_APP_ID}"'
        else:
            value = (f'Bearer realm="{self.tenant.tenant_id}",client_id="{SHAREPOINT_APP_ID}",'
                     f'trusted_issuers="{SHAREPOINT_APP_ID}@*,https://sts.windows.net/*/",'
                     f'authorization_uri="{authority}"')
        return [("www-authenticate", value)]
