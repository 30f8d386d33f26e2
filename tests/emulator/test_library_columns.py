"""Library columns across the two surfaces, as circulation uses them (graph-api.md §2.15, §3.1).

We test these aspects: a column added to a document library through SharePoint REST
(``GetList(…)/fields``, FieldTypeKind) is then writable on a file through Graph
``PATCH …/listItem/fields`` and read back by both surfaces; a column the library does not have
is refused by Graph with 400 "Field '…' is not recognized" and changes nothing; the version the
file is at does not change (columns are metadata), while its eTag does.
"""

from __future__ import annotations

from typing import Any

import httpx
import requests

LIB = "Shared Documents"


async def test_a_rest_column_is_writable_through_graph_list_item_fields(
        tenant_info: dict[str, Any], sp_http: requests.Session, graph_http: httpx.AsyncClient, unique: str) -> None:
    site = tenant_info["site_url"]
    digest = sp_http.post(f"{site}/_api/contextinfo").json()["d"]["GetContextWebInformation"]["FormDigestValue"]
    column = f"Col{unique.replace('-', '')}"
    fields_url = f"{site}/_api/web/GetList('{tenant_info['site_path']}/{LIB}')/fields"
    created = sp_http.post(fields_url, json={"__metadata": {"type": "SP.Field"}, "Title": column, "FieldTypeKind": 2},
                           headers={"X-RequestDigest": digest, "Content-Type": "application/json;odata=verbose"})
    assert created.status_code in (200, 201), created.text
    assert created.json()["d"]["InternalName"] == column

    drive = tenant_info["drive_id"]
    put = await graph_http.put(f"/drives/{drive}/root:/{unique}/a.txt:/content", content=b"text")
    assert put.status_code in (200, 201)
    item = put.json()
    fields = f"/drives/{drive}/items/{item['id']}/listItem/fields"
    patched = await graph_http.patch(fields, json={column: "CARTIF/WG-TF/W/1"})
    assert patched.status_code == 200, patched.text
    assert patched.json()[column] == "CARTIF/WG-TF/W/1"
    unknown = await graph_http.patch(fields, json={"NoSuchColumn": "x"})
    assert unknown.status_code == 400 and "NoSuchColumn" in unknown.json()["error"]["message"]
    assert "NoSuchColumn" not in (await graph_http.get(fields)).json()

    again = (await graph_http.get(f"/drives/{drive}/items/{item['id']}")).json()
    assert again["eTag"] != item["eTag"]
    versions = (await graph_http.get(f"/drives/{drive}/items/{item['id']}/versions")).json()["value"]
    assert [v["id"] for v in versions] == ["1.0"]
    via_rest = sp_http.get(f"{site}/_api/web/GetFileByServerRelativeUrl('{tenant_info['site_path']}/{LIB}/"
                           f"{unique}/a.txt')/ListItemAllFields").json()["d"]
    assert via_rest[column] == "CARTIF/WG-TF/W/1"
