# Regenerates tests/corpus/bad/*.toml from one good declaration.
# Each case is (file name, expected rule, transformation). Run: python3 gen.py
import os, re
GOOD = '''version = 1

[store]
kind = "file"

[apps.dex-zoom]
display_name = "DEX for Zoom"
platform = "zoom"
usage = "admin-managed"
redirect_url = "https://acme.service-now.com/oauth_redirect.do"
allow_list = ["https://acme.service-now.com/oauth_redirect.do"]
strict_mode = false
subdomain_check = false
presets = ["servicenow-dex-zoom"]
scopes = []

[apps.dex-zoom.target]
kind = "servicenow"
instance = "acme"
'''
R = "https://acme.service-now.com/oauth_redirect.do"
def redirect(new):  # both redirect and allow list
    return lambda t: t.replace(R, new)
def only_redirect(new):
    return lambda t: t.replace(f'redirect_url = "{R}"', f'redirect_url = "{new}"')
def only_allow(new):
    return lambda t: t.replace(f'allow_list = ["{R}"]', f'allow_list = [{new}]')
def sub(a, b):
    return lambda t: t.replace(a, b, 1)
def scopes(v):
    return sub('scopes = []', f'scopes = {v}')
MGMT = "\n[apps.mgmt]\ndisplay_name = \"mgmt\"\nplatform = \"zoom\"\nusage = \"admin-managed\"\nscopes = [\"marketplace:read:app:admin\"]\n\n[apps.mgmt.oauth]\ngrant = \"account_credentials\"\naccount_id = \"acc1\"\n"
cases = [
  ("redirect-lookalike-suffix", "redirect-target", redirect("https://acme.service-now.com.evil.example/oauth_redirect.do")),
  ("redirect-lookalike-path", "redirect-target", redirect("https://evil.example/acme.service-now.com/oauth_redirect.do")),
  ("redirect-userinfo", "url-userinfo", redirect("https://acme.service-now.com@evil.example/oauth_redirect.do")),
  ("redirect-encoded-host", "url-encoded-host", redirect("https://acme%2eservice-now.com/oauth_redirect.do")),
  ("redirect-unicode-homoglyph", "url-non-ascii", redirect("https://\u0430cme.service-now.com/oauth_redirect.do")),
  ("redirect-backslash", "url-characters", redirect("https://evil.example\\\\@acme.service-now.com/oauth_redirect.do")),
  ("redirect-http", "url-https", redirect("http://acme.service-now.com/oauth_redirect.do")),
  ("redirect-javascript", "url-https", redirect("javascript:alert(1)")),
  ("redirect-relative", "url-parse", redirect("/oauth_redirect.do")),
  ("redirect-no-scheme", "url-parse", redirect("acme.service-now.com/oauth_redirect.do")),
  ("redirect-fragment", "url-fragment", redirect("https://acme.service-now.com/oauth_redirect.do#frag")),
  ("redirect-uppercase-host", "url-canonical", redirect("https://ACME.service-now.com/oauth_redirect.do")),
  ("redirect-default-port", "url-canonical", redirect("https://acme.service-now.com:443/oauth_redirect.do")),
  ("redirect-dot-segments", "url-canonical", redirect("https://acme.service-now.com/x/../oauth_redirect.do")),
  ("redirect-space", "url-characters", redirect("https://acme.service-now.com/oauth redirect.do")),
  ("redirect-empty", "url-empty", redirect("")),
  ("redirect-wrong-path", "redirect-target", redirect("https://acme.service-now.com/oauth_callback.do")),
  ("redirect-trailing-slash", "redirect-target", redirect("https://acme.service-now.com/oauth_redirect.do/")),
  ("redirect-other-instance", "redirect-target", redirect("https://beta.service-now.com/oauth_redirect.do")),
  ("redirect-ip-literal", "redirect-target", redirect("https://203.0.113.7/oauth_redirect.do")),
  ("allow-trailing-slash", "allow-list-missing-redirect", only_allow('"https://acme.service-now.com/oauth_redirect.do/"')),
  ("allow-case", "allow-list-missing-redirect", only_allow('"https://acme.service-now.com/OAuth_redirect.do"')),
  ("allow-empty", "allow-list-empty", only_allow('')),
  ("allow-lookalike", "allow-list-look-alike", only_allow(f'"{R}", "https://acme.service-now.com.evil.example/oauth_redirect.do"')),
  ("allow-missing", "missing-field", sub(f'allow_list = ["{R}"]\n', '')),
  ("allow-not-array", "toml-type", only_allow('').__class__ and sub(f'allow_list = ["{R}"]', f'allow_list = "{R}"')),
  ("scope-uppercase", "scope-grammar", scopes('["User:read:email:admin"]')),
  ("scope-space-separated", "scope-grammar", scopes('["user:read:email:admin meeting:read:meeting:admin"]')),
  ("scope-bad-action", "scope-grammar", scopes('["user:fetch:email:admin"]')),
  ("scope-bad-suffix", "scope-grammar", scopes('["user:read:email:root"]')),
  ("scope-two-parts", "scope-grammar", scopes('["user:email"]')),
  ("scope-empty-string", "scope-grammar", scopes('[""]')),
  ("scope-duplicate-explicit", "scope-duplicate", scopes('["meeting:read:meeting:admin", "meeting:read:meeting:admin"]')),
  ("scope-duplicate-of-preset", "scope-duplicate", scopes('["user:read:user:admin"]')),
  ("scopes-empty", "scope-empty", lambda t: t.replace('presets = ["servicenow-dex-zoom"]\n', '')),
  ("usage-user-managed-admin-scopes", "scope-admin-usage", sub('usage = "admin-managed"', 'usage = "user-managed"')),
  ("usage-user-managed-explicit-admin", "scope-admin-usage", lambda t: t.replace('usage = "admin-managed"', 'usage = "user-managed"').replace('presets = ["servicenow-dex-zoom"]\n', '').replace('scopes = []', 'scopes = ["meeting:read:meeting:admin"]')),
  ("usage-unknown", "usage", sub('usage = "admin-managed"', 'usage = "ADMIN_MANAGEMENT"')),
  ("preset-unknown", "preset-unknown", sub('presets = ["servicenow-dex-zoom"]', 'presets = ["servicenow-dex-zoon"]')),
  ("display-name-long", "display-name-length", sub('"DEX for Zoom"', '"DEX for Zoom - Digital End-user Experience Connector"')),
  ("display-name-empty", "display-name-empty", sub('"DEX for Zoom"', '"   "')),
  ("display-name-control", "display-name-characters", sub('"DEX for Zoom"', '"DEX\\tfor Zoom"')),
  ("display-name-padded", "display-name-characters", sub('"DEX for Zoom"', '" DEX for Zoom"')),
  ("platform-unknown", "platform-unknown", sub('platform = "zoom"', 'platform = "zooom"')),
  ("instance-host-given", "target-instance", sub('instance = "acme"', 'instance = "acme.service-now.com"')),
  ("instance-uppercase", "target-instance", sub('instance = "acme"', 'instance = "ACME"')),
  ("instance-both", "target-instance", sub('instance = "acme"', 'instance = "acme"\ninstance_url = "https://acme.service-now.com"')),
  ("target-kind", "target-kind", sub('kind = "servicenow"', 'kind = "salesforce"')),
  ("app-name", "app-name", lambda t: t.replace('[apps.dex-zoom]', '[apps."DEX Zoom"]').replace('[apps.dex-zoom.target]', '[apps."DEX Zoom".target]')),
  ("unknown-field-app", "unknown-field", sub('strict_mode = false', 'strict_mod = false')),
  ("unknown-field-top", "unknown-field", sub('version = 1', 'version = 1\nstores = "file"')),
  ("unknown-field-target", "unknown-field", sub('instance = "acme"', 'instance = "acme"\nregion = "eu"')),
  ("target-auth", "target-auth", sub('instance = "acme"', 'instance = "acme"\nauth = "password"')),
  ("target-setting-type", "toml-type", sub('instance = "acme"', 'instance = "acme"\nalias = 7')),
  ("target-instance-url-path", "target-instance-url", sub('instance = "acme"', 'instance_url = "https://sn.example.com/now"')),
  ("target-alias", "target-alias", sub('instance = "acme"', 'instance = "acme"\nalias = "DEX for Zoom"')),
  ("target-name", "target-name", sub('instance = "acme"', 'instance = "acme"\nconnection_name = "   "')),
  ("wrong-type-bool", "toml-type", sub('strict_mode = false', 'strict_mode = "no"')),
  ("wrong-type-version", "toml-type", sub('version = 1', 'version = "one"')),
  ("wrong-type-scopes", "toml-type", scopes('"user:read:user:admin"')),
  ("version-2", "version", sub('version = 1', 'version = 2')),
  ("missing-version", "missing-field", sub('version = 1\n', '')),
  ("missing-store", "missing-field", sub('[store]\nkind = "file"\n', '')),
  ("missing-redirect", "missing-field", sub(f'redirect_url = "{R}"\n', '')),
  ("missing-usage", "missing-field", sub('usage = "admin-managed"\n', '')),
  ("no-apps", "no-apps", lambda t: t.split('[apps.')[0]),
  ("toml-unclosed-string", "toml-syntax", sub('"DEX for Zoom"', '"DEX for Zoom')),
  ("toml-bare-value", "toml-syntax", sub('platform = "zoom"', 'platform = zoom')),
  ("toml-duplicate-key", "toml-syntax", sub('platform = "zoom"', 'platform = "zoom"\nplatform = "zoom"')),
  ("toml-garbage", "toml-syntax", lambda t: "<?xml version='1.0'?><apps/>\n"),
  ("toml-unclosed-table", "toml-syntax", sub('[apps.dex-zoom]', '[apps.dex-zoom')),
  ("store-kind-missing", "missing-field", sub('kind = "file"\n', '')),
  ("store-kind-unknown", "store-kind", sub('kind = "file"', 'kind = "s3"')),
  ("empty-file", "file-empty", lambda t: ""),
  ("whitespace-only", "file-empty", lambda t: "\n\n   \n"),
  ("oversized", "file-too-large", lambda t: t + "#" + "x" * (300 * 1024) + "\n"),
  ("managed-by-unknown", "managed-by-unknown", sub('scopes = []', 'scopes = []\nmanaged_by = "zoom-admin"')),
  ("managed-by-self", "managed-by-self", sub('scopes = []', 'scopes = []\nmanaged_by = "dex-zoom"')),
  ("managed-by-no-marketplace-scopes", "managed-by-scopes", lambda t: t.replace('scopes = []', 'scopes = []\nmanaged_by = "mgmt"', 1) + MGMT.replace("marketplace:read:app:admin", "user:read:user:admin")),
  ("managed-by-chain", "managed-by-chain", lambda t: t.replace('scopes = []', 'scopes = []\nmanaged_by = "mgmt"', 1) + MGMT.replace('usage = "admin-managed"', 'usage = "admin-managed"\nmanaged_by = "dex-zoom"')),
  ("app-id-invalid", "app-id", sub('scopes = []', 'scopes = []\napp_id = "not an id!"')),
  ("optional-scope-not-requested", "optional-scope-unknown", sub('scopes = []', 'scopes = []\noptional_scopes = ["meeting:read:meeting:admin"]')),
  ("optional-scope-all", "optional-scope-all", sub('scopes = []', 'scopes = []\noptional_scopes = ["report:read:user:admin", "dashboard:read:list_meeting_participants_qos:admin", "dashboard:read:meeting_participant_qos:admin", "dashboard:read:list_zoomrooms:admin", "dashboard:read:issues_zoomroom:admin", "user:read:user:admin"]')),
  ("webhook-http", "url-https", lambda t: t + '\n[apps.dex-zoom.webhook]\nendpoint_url = "http://hooks.example.com/zoom"\nevents = ["meeting.ended"]\n'),
  ("webhook-no-events", "webhook-events-empty", lambda t: t + '\n[apps.dex-zoom.webhook]\nendpoint_url = "https://hooks.example.com/zoom"\nevents = []\n'),
  ("webhook-bad-event", "webhook-event-name", lambda t: t + '\n[apps.dex-zoom.webhook]\nendpoint_url = "https://hooks.example.com/zoom"\nevents = ["Meeting Ended"]\n'),
  ("webhook-missing-url", "missing-field", lambda t: t + '\n[apps.dex-zoom.webhook]\nevents = ["meeting.ended"]\n'),
  ("webhook-unknown-field", "unknown-field", lambda t: t + '\n[apps.dex-zoom.webhook]\nendpoint = "https://hooks.example.com/zoom"\nevents = ["meeting.ended"]\n'),
]
os.makedirs("bad", exist_ok=True)
for f in os.listdir("bad"):
    os.remove(os.path.join("bad", f))
for name, rule, fn in cases:
    body = fn(GOOD)
    assert body != GOOD, name
    with open(f"bad/{name}.toml", "w", encoding="utf-8") as fh:
        fh.write(f"# expect: {rule}\n" + body)
with open("good.toml", "w") as fh:
    fh.write(GOOD)
print(len(cases), "cases")
