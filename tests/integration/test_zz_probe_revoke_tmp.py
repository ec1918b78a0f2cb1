from tests.integration.test_portal_revoke import *  # noqa
from tests.integration.test_portal_revoke import accepted_certificate, revoke, submit_csr, csr_for

def test_probe(ctx, client):
    key = ec.generate_private_key(ec.SECP256R1())
    host, reg, serial = accepted_certificate(ctx, client, key)
    revoke(client, "keyCompromise")
    same = submit_csr(client, csr_for([host], key))
    import re
    print(re.search(r'<div class="error".*?</div>', same.text, re.S).group(0))
    r = client.get("/portal/download", follow_redirects=False)
    print("download ->", r.status_code, r.headers.get("location"))
    r = client.get("/portal/certificate", follow_redirects=False)
    print("certificate ->", r.status_code, r.headers.get("location"))
    r = client.get("/portal", follow_redirects=False)
    print("home ->", r.status_code, r.headers.get("location"))
