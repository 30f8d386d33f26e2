"""Seed scenarios for the local tenant; ``cartif`` is the negotiation's workspace on day one.

It creates what an IT administrator would have set up before the bot first runs: the tenant,
the dedicated site "CARTIF" with an empty "Documents" library, the bot's app registration
(``Sites.Selected`` with a ``fullcontrol`` grant on that site, plus directory read roles), a
second app with no grant, an admin app (``Sites.FullControl.All``, a client secret) for grant
management, about 40 people (each participating country's Chief Negotiator, National Focal
Point and delegates, mostly guests from their ministries; ADB secretariat staff; an observer),
directory groups, and one Teams channel per working group plus Chief Negotiators, Plenary and
Secretariat, each with a Workflows webhook.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from emulator.identity import make_app_certificate

if TYPE_CHECKING:
    from emulator.app import Tenant

TENANT_DOMAIN = "cartif.onmicrosoft.com"
SITE_PATH = "/sites/CARTIF"
SHAREPOINT_HOSTNAME = "localhost"

# (code, ministry domain, [(given, surname, role)]) — role: CN chief negotiator, NFP national focal
# point, DEL delegate. Names are illustrative.
COUNTRIES: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("CHN", "mofcom.gov.cn", (("Wei", "Zhang", "CN"), ("Li", "Na", "NFP"), ("Chen", "Hao", "DEL"),
                              ("Liu", "Yang", "DEL"))),
    ("GEO", "economy.ge", (("Nino", "Beridze", "CN"), ("Giorgi", "Kapanadze", "NFP"),
                           ("Tamar", "Lomidze", "DEL"), ("Levan", "Gelashvili", "DEL"))),
    ("KAZ", "mti.gov.kz", (("Aigerim", "Nurlanova", "CN"), ("Daniyar", "Seitkali", "NFP"),
                           ("Madina", "Abenova", "DEL"), ("Yerlan", "Tokayev", "DEL"))),
    ("KGZ", "mineconom.gov.kg", (("Aibek", "Sydykov", "CN"), ("Gulnara", "Asanova", "NFP"),
                                 ("Nurlan", "Osmonov", "DEL"), ("Aizada", "Bekova", "DEL"))),
    ("MNG", "mofa.gov.mn", (("Bat-Erdene", "Ganbaatar", "CN"), ("Oyunchimeg", "Dorj", "NFP"),
                            ("Tuvshin", "Bold", "DEL"), ("Saruul", "Enkhbayar", "DEL"))),
    ("PAK", "commerce.gov.pk", (("Ayesha", "Khan", "CN"), ("Bilal", "Ahmed", "NFP"),
                                ("Sana", "Malik", "DEL"), ("Usman", "Qureshi", "DEL"))),
    ("TJK", "medt.tj", (("Farrukh", "Rahimov", "CN"), ("Zarina", "Nazarova", "NFP"),
                        ("Dilshod", "Karimov", "DEL"), ("Malika", "Safarova", "DEL"))),
    ("TKM", "economy.gov.tm", (("Merdan", "Annayev", "CN"), ("Ogulgerek", "Berdiyeva", "NFP"),
                               ("Serdar", "Atayev", "DEL"), ("Jennet", "Orazova", "DEL"))),
    ("UZB", "mift.uz", (("Bakhtiyor", "Yusupov", "CN"), ("Nodira", "Alimova", "NFP"),
                        ("Sherzod", "Tashkentov", "DEL"), ("Kamola", "Rashidova", "DEL"))),
)
OBSERVERS: tuple[tuple[str, str, str, str], ...] = (("AZE", "economy.gov.az", "Rashad", "Mammadov"),)
SECRETARIAT: tuple[tuple[str, str, str], ...] = (
    ("Maria", "Santos", "Head, CAREC Secretariat"), ("James", "Okafor", "Trade Facilitation Specialist"),
    ("Hiroshi", "Tanaka", "Legal Officer"), ("Elena", "Petrova", "Knowledge Management Officer"),
)
#: Channels the negotiation posts to: one per working group (domain.md §1.4) and three plenary ones.
WORKING_GROUPS: tuple[tuple[str, str], ...] = (
    ("WG-FW", "Framework and general provisions"), ("WG-TF", "Trade facilitation, customs and transit"),
    ("WG-SPS", "Sanitary and phytosanitary measures"), ("WG-TBT", "Technical barriers to trade"),
    ("WG-SRV", "Services domestic regulation"), ("WG-INV", "Investment facilitation"),
    ("WG-MBP", "Movement of business persons"), ("WG-DT", "Digital trade"),
    ("WG-INST", "Institutional provisions and dispute settlement"),
)
PLENARY_CHANNELS: tuple[tuple[str, str], ...] = (
    ("Chief Negotiators", "Chief Negotiators"), ("Plenary", "Plenary"), ("Secretariat", "Secretariat"),
)

BOT_ROLES = ("Sites.Selected", "User.Read.All", "Group.Read.All", "GroupMember.Read.All")


def _mail_name(given: str, surname: str) -> str:
    return f"{given}.{surname}".lower().replace(" ", "").replace("'", "")


def seed_cartif(tenant: Tenant) -> dict[str, Any]:
    """Create the CARTIF scenario once; a second call returns what the first created."""
    state = tenant.state
    if state.meta("seeded") == "cartif":
        return seed_summary(tenant)
    with state.transaction():
        if not state.meta("tenant_id"):
            state.set_meta("tenant_id", str(uuid.uuid4()))
        state.set_meta("tenant_domain", TENANT_DOMAIN)
        site = state.create_site(SHAREPOINT_HOSTNAME, SITE_PATH, "CARTIF",
                                 description="CAREC Agreement on Trade and Investment Facilitation negotiations")
        library = state.create_list(site, "Documents", base_template=101, url_name="Shared Documents",
                                    drive_name="Documents")
        state.set_meta("site_id", site.id)
        state.set_meta("drive_id", library.drive_id or "")

        apps = {}
        for key, name, roles, with_secret in (
            ("bot", "cartif-bot", BOT_ROLES, False),
            ("unprivileged", "cartif-unprivileged", ("Sites.Selected",), False),
            ("admin", "cartif-tenant-admin", ("Sites.FullControl.All", "User.Read.All", "Group.Read.All"), True),
            ("secretariat", "cartif-secretariat", (), True),
        ):
            client_id = str(uuid.uuid4())
            pem_with_key, cert_pem = make_app_certificate(name)
            secret = f"{uuid.uuid4().hex}~{uuid.uuid4().hex[:8]}" if with_secret else None
            state.add_app(client_id, name, cert_pem=cert_pem, secret=secret, roles=roles)
            path = tenant.identity.write_app_certificate(key, pem_with_key)
            state.set_meta(f"app:{key}:client_id", client_id)
            state.set_meta(f"app:{key}:certificate_path", str(path))
            if secret:
                state.set_meta(f"app:{key}:secret", secret)
            apps[key] = client_id
        state.add_site_grant(site.id, apps["bot"], "cartif-bot", ["fullcontrol"])
        # The bot's registration exposes its API (api://{client id}) with the app role Sync.Trigger;
        # the secretariat's app is granted it, so it can trigger a sync on a running service.
        state.expose_api(apps["bot"], f"api://{apps['bot']}", ["Sync.Trigger"])
        state.set_meta("app:bot:app_id_uri", f"api://{apps['bot']}")
        state.assign_app_role(apps["secretariat"], apps["bot"], "Sync.Trigger")

        everyone = state.add_group("CARTIF Negotiators", "cartif-negotiators",
                                   description="Everyone taking part in the CARTIF negotiations")
        secretariat = state.add_group("CARTIF Secretariat", "cartif-secretariat",
                                      description="ADB staff serving as the CARTIF secretariat")
        for code, domain, people in COUNTRIES:
            delegation = state.add_group(f"CARTIF Delegation {code}", f"cartif-{code.lower()}",
                                         description=f"The {code} delegation")
            for given, surname, role in people:
                mail = f"{_mail_name(given, surname)}@{domain}"
                upn = f"{mail.replace('@', '_')}#EXT#@{TENANT_DOMAIN}"
                title = {"CN": "Chief Negotiator", "NFP": "National Focal Point", "DEL": "Delegate"}[role]
                user_id = state.add_user(upn, f"{given} {surname} ({code})", user_type="Guest", mail=mail,
                                         given_name=given, surname=surname, job_title=title,
                                         department=f"Delegation of {code}", country=code)
                state.add_group_member(delegation, user_id)
                state.add_group_member(everyone, user_id)
        for code, domain, given, surname in OBSERVERS:
            mail = f"{_mail_name(given, surname)}@{domain}"
            state.add_user(f"{mail.replace('@', '_')}#EXT#@{TENANT_DOMAIN}", f"{given} {surname} ({code})",
                           user_type="Guest", mail=mail, given_name=given, surname=surname, job_title="Observer",
                           department=f"Observer delegation of {code}", country=code)
        for given, surname, title in SECRETARIAT:
            upn = f"{_mail_name(given, surname)}@{TENANT_DOMAIN}"
            user_id = state.add_user(upn, f"{given} {surname}", given_name=given, surname=surname,
                                     job_title=title, department="CAREC Secretariat (ADB)")
            state.add_group_member(secretariat, user_id)
            state.add_group_member(everyone, user_id)

        for name, display in (*WORKING_GROUPS, *PLENARY_CHANNELS):
            state.add_channel(name, display)
        state.set_meta("seeded", "cartif")
    return seed_summary(tenant)


def seed_summary(tenant: Tenant) -> dict[str, Any]:
    state = tenant.state
    return {"scenario": state.meta("seeded"), "site_id": state.meta("site_id"),
            "drive_id": state.meta("drive_id"), "users": len(state.users()), "groups": len(state.groups()),
            "channels": [c["name"] for c in state.channels()]}


def connection_file(tenant: Tenant) -> dict[str, Any]:
    """``DIR/tenant.json``: everything a client needs to reach this tenant (see README)."""
    state, base = tenant.state, tenant.base_url
    meta = state.meta
    data: dict[str, Any] = {
        "tenant_id": tenant.tenant_id,
        "tenant_domain": meta("tenant_domain"),
        "authority": f"{base}/{tenant.tenant_id}",
        "graph_url": f"{base}/v1.0",
        "sharepoint_host": SHAREPOINT_HOSTNAME,
        "sharepoint_url": base,
        "site_url": f"{base}{SITE_PATH}",
        "site_path": SITE_PATH,
        "site_id": meta("site_id"),
        "drive_id": meta("drive_id"),
        "client_id": meta("app:bot:client_id"),
        "certificate_path": meta("app:bot:certificate_path"),
        "unprivileged_client_id": meta("app:unprivileged:client_id"),
        "unprivileged_certificate_path": meta("app:unprivileged:certificate_path"),
        "admin_client_id": meta("app:admin:client_id"),
        "admin_client_secret": meta("app:admin:secret"),
        "admin_certificate_path": meta("app:admin:certificate_path"),
        "api_app_id_uri": meta("app:bot:app_id_uri"),
        "secretariat_client_id": meta("app:secretariat:client_id"),
        "secretariat_client_secret": meta("app:secretariat:secret"),
        "secretariat_certificate_path": meta("app:secretariat:certificate_path"),
        "ca_path": str(tenant.identity.ca_path),
        "graph_scope": "https://graph.microsoft.com/.default",
        "sharepoint_scope": f"{base}/.default",
        "admin_url": f"{base}/_admin",
        "teams_url": f"{base}/teams",
        "teams_webhooks": {c["name"]: f"{base}/teams/webhooks/{c['webhook_id']}" for c in state.channels()},
        "data_dir": str(tenant.config.data_dir),
        "port": tenant.config.port,
    }
    return data
