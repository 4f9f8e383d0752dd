"""Origin-request: send a viewer to the beta origin by header or cookie.

`X-Origin: beta` or a cookie `origin=beta` switches the request to the beta bucket; everyone
else stays on the origin the behavior names. The Host header follows the origin, as AWS's own
examples do.
"""

BETA_BUCKET = "beta-site.s3.us-east-1.amazonaws.com"


def _wants_beta(headers):
    for entry in headers.get("x-origin", []):
        if entry["value"].strip().lower() == "beta":
            return True
    for entry in headers.get("cookie", []):
        for part in entry["value"].split(";"):
            if part.strip() == "origin=beta":
                return True
    return False


def handler(event, context):
    request = event["Records"][0]["cf"]["request"]
    if _wants_beta(request["headers"]):
        request["origin"] = {
            "s3": {
                "authMethod": "none",
                "customHeaders": {},
                "domainName": BETA_BUCKET,
                "path": "",
                "region": "us-east-1",
            }
        }
        request["headers"]["host"] = [{"key": "Host", "value": BETA_BUCKET}]
    return request
