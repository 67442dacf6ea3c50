"""An OAuth 2.0 authorization server built on authlib (PyPI), nobody's code
here but the glue: the independent judge of what RFC 6749, 7636 and 7009
mean in connapp's interop tests (tests/e2e/interop.rs).

authlib decides: client authentication (client_secret_basic with RFC 6749
§2.3.1 decoding, client_secret_post), PKCE (required), the code exchange,
refresh (with or without rotation), client credentials with scopes, and
revocation. This file only stores things in memory, approves consent
automatically as one user, and exposes a protected resource and a test view.

Usage: python3 authlib_server.py --client-id ID --client-secret SECRET
           [--rotate] [--auth basic|post] [--scope "read write"] [--expires-in N]
Prints the port it listens on (127.0.0.1, chosen by the system), then serves.
"""

import argparse
import hmac
import os
import secrets
import sys
import threading
import time
from urllib.parse import urlparse

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on loopback only

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector, current_token
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

LOCK = threading.Lock()
CLIENTS = {}
CODES = {}
TOKENS = []
AUTHORIZE_REQUESTS = []
STATS = {"token_requests": 0, "grants": {}}


class User:
    def __init__(self, name):
        self.name = name

    def get_user_id(self):
        return self.name


ALICE = User("alice")


class Client(ClientMixin):
    def __init__(self, client_id, client_secret, auth_method, scope):
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth_method = auth_method
        self.scope = scope

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        if not scope:
            return ""
        allowed = set(self.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        # RFC 8252 §7.3: any port on the loopback interface, same path.
        u = urlparse(redirect_uri)
        return u.scheme == "http" and u.hostname == "127.0.0.1" and u.path == "/callback"

    def check_client_secret(self, client_secret):
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.auth_method

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in ("authorization_code", "refresh_token", "client_credentials")


class Code:
    def __init__(self, code, client_id, redirect_uri, scope, challenge, method):
        self.code = code
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.code_challenge = challenge
        self.code_challenge_method = method
        self.auth_time = time.time()

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def is_expired(self):
        return time.time() - self.auth_time > 300


class Token(TokenMixin):
    def __init__(self, client_id, data, user, grant_id):
        self.client_id = client_id
        self.grant_id = grant_id
        self.access_token = data["access_token"]
        self.refresh_token = data.get("refresh_token")
        self.scope = data.get("scope", "")
        self.expires_in = data.get("expires_in", 3600)
        self.issued_at = time.time()
        self.user = user
        self.access_revoked = False
        self.refresh_revoked = False

    def check_client(self, client):
        return self.client_id == client.get_client_id()

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def is_revoked(self):
        return self.access_revoked

    def is_expired(self):
        return time.time() > self.issued_at + self.expires_in


def query_client(client_id):
    return CLIENTS.get(client_id)


def save_token(data, req):
    with LOCK:
        user = req.user if getattr(req, "user", None) else None
        # A refresh continues its grant; anything else starts one.
        old = getattr(req, "refresh_token", None)
        grant_id = old.grant_id if old is not None else secrets.token_hex(8)
        TOKENS.append(Token(req.client.client_id, data, user, grant_id))


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def save_authorization_code(self, code, req):
        with LOCK:
            CODES[code] = Code(
                code,
                req.client.client_id,
                req.payload.redirect_uri,
                req.payload.scope,
                req.payload.data.get("code_challenge"),
                req.payload.data.get("code_challenge_method"),
            )

    def query_authorization_code(self, code, client):
        c = CODES.get(code)
        if c and c.client_id == client.client_id and not c.is_expired():
            return c
        return None

    def delete_authorization_code(self, authorization_code):
        CODES.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return ALICE


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    INCLUDE_NEW_REFRESH_TOKEN = False  # set from --rotate

    def authenticate_refresh_token(self, refresh_token):
        for t in TOKENS:
            if t.refresh_token == refresh_token and not t.refresh_revoked:
                return t
        return None

    def authenticate_user(self, credential):
        return credential.user or ALICE

    def revoke_old_credential(self, credential):
        # Only a rotating server retires the old refresh token.
        if self.INCLUDE_NEW_REFRESH_TOKEN:
            credential.refresh_revoked = True
            credential.access_revoked = True


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string, token_type_hint):
        for t in TOKENS:
            if t.access_token == token_string or t.refresh_token == token_string:
                return t
        return None

    def revoke_token(self, token, req):
        # RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate the
        # access tokens of the same grant; this server does.
        with LOCK:
            for t in TOKENS:
                if t.grant_id == token.grant_id:
                    t.access_revoked = True
                    t.refresh_revoked = True


class Validator(BearerTokenValidator):
    def authenticate_token(self, token_string):
        for t in TOKENS:
            if t.access_token == token_string:
                return t
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret", required=True)
    ap.add_argument("--auth", choices=["basic", "post"], default="basic")
    ap.add_argument("--scope", default="read write")
    ap.add_argument("--rotate", action="store_true")
    ap.add_argument("--expires-in", type=int, default=3600)
    a = ap.parse_args()

    app = Flask(__name__)
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {
        "authorization_code": a.expires_in,
        "refresh_token": a.expires_in,
        "client_credentials": a.expires_in,
    }
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
    method = "client_secret_basic" if a.auth == "basic" else "client_secret_post"
    CLIENTS[a.client_id] = Client(a.client_id, a.client_secret, method, a.scope)
    RefreshTokenGrant.INCLUDE_NEW_REFRESH_TOKEN = a.rotate

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(Revocation)
    protect = ResourceProtector()
    protect.register_token_validator(Validator())

    @app.before_request
    def count():
        if request.path == "/token":
            with LOCK:
                STATS["token_requests"] += 1
                g = request.form.get("grant_type", "")
                STATS["grants"][g] = STATS["grants"].get(g, 0) + 1

    @app.route("/authorize", methods=["GET"])
    def authorize():
        with LOCK:
            AUTHORIZE_REQUESTS.append(dict(request.args))
        # Consent is given at once, as alice.
        return server.create_authorization_response(grant_user=ALICE)

    @app.route("/token", methods=["POST"])
    def issue_token():
        return server.create_token_response()

    @app.route("/revoke", methods=["POST"])
    def revoke():
        return server.create_endpoint_response(Revocation.ENDPOINT_NAME)

    @app.route("/api/me")
    @protect()
    def me():
        return jsonify(user=current_token.user.name if current_token.user else None, scope=current_token.scope)

    @app.route("/_test/state")
    def state():
        with LOCK:
            return jsonify(
                authorize_requests=AUTHORIZE_REQUESTS,
                token_requests=STATS["token_requests"],
                grants=STATS["grants"],
            )

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    print(srv.server_port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
