"""gRPC, both sides, over real ``grpcio`` servers on loopback (local credentials: gRPC
sends call credentials over secure channels only): our call credentials and aio
interceptor with a real ``authkestra serve``'s tokens, our server interceptors checking
them and each method's scopes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import grpc.aio
import pytest

from authkestra import ClientCredentialsFlow, ConfigError
from authkestra.resource import JWTVerifier
from authkestra.resource.grpc import AioTokenInterceptor, TokenInterceptor, access_token
from tests.resource.conftest import OurDeployment
from tests.resource.support import AUDIENCE

SERVICE = "authkestra.test.Orders"
SCOPES = {f"/{SERVICE}/Get": ["read"], f"/{SERVICE}/Admin": ["admin"]}


def _same(value: bytes) -> bytes:
    return value


def sync_handlers() -> Any:
    def get(request: bytes, context: Any) -> bytes:
        return (access_token().client_id or "").encode()

    def admin(request: bytes, context: Any) -> bytes:
        return b"admin"

    def listing(request: bytes, context: Any) -> Iterator[bytes]:
        for n in range(2):
            yield f"{access_token().client_id}-{n}".encode()

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Get": grpc.unary_unary_rpc_method_handler(get, _same, _same),
            "Admin": grpc.unary_unary_rpc_method_handler(admin, _same, _same),
            "List": grpc.unary_stream_rpc_method_handler(listing, _same, _same),
        },
    )


def flow_of(deployment: OurDeployment) -> ClientCredentialsFlow:
    return ClientCredentialsFlow(
        deployment.client_id, deployment.secret, deployment.server.token_url, resource=AUDIENCE
    )


def verifier_of(deployment: OurDeployment) -> JWTVerifier:
    return JWTVerifier(issuer=deployment.issuer, audience=AUDIENCE, allow_insecure_http=True)


@pytest.fixture
def sync_server(our_server: OurDeployment) -> Iterator[int]:
    server = grpc.server(
        ThreadPoolExecutor(max_workers=4),
        interceptors=[TokenInterceptor(verifier_of(our_server), scopes=SCOPES)],
    )
    server.add_generic_rpc_handlers((sync_handlers(),))
    port = server.add_secure_port("localhost:0", grpc.local_server_credentials())
    server.start()
    yield port
    server.stop(grace=None)


def test_call_credentials_carry_the_token(sync_server: int, our_server: OurDeployment) -> None:
    credentials = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(), flow_of(our_server).grpc_call_credentials(["read"])
    )
    with grpc.secure_channel(f"localhost:{sync_server}", credentials) as channel:
        get = channel.unary_unary(f"/{SERVICE}/Get")
        assert get(b"") == our_server.client_id.encode()
        listing = channel.unary_stream(f"/{SERVICE}/List")
        assert list(listing(b"")) == [f"{our_server.client_id}-{n}".encode() for n in range(2)]
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(f"/{SERVICE}/Admin")(b"")
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert refused.value.details().startswith("insufficient_scope:")


def test_a_call_without_a_token_is_unauthenticated(sync_server: int) -> None:
    with grpc.secure_channel(
        f"localhost:{sync_server}", grpc.local_channel_credentials()
    ) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(f"/{SERVICE}/Get")(b"")
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as forged:
            channel.unary_unary(f"/{SERVICE}/Get")(
                b"", metadata=(("authorization", "Bearer not.a.token"),)
            )
        assert forged.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert forged.value.details().startswith("invalid_token:")
        assert "not.a.token" not in forged.value.details()


def test_the_aio_sides(our_server: OurDeployment) -> None:
    async def get(request: bytes, context: Any) -> bytes:
        return (access_token().client_id or "").encode()

    async def main() -> None:
        server = grpc.aio.server(
            interceptors=[AioTokenInterceptor(verifier_of(our_server), scopes=SCOPES)]
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE, {"Get": grpc.unary_unary_rpc_method_handler(get, _same, _same)}
                ),
            )
        )
        port = server.add_secure_port("localhost:0", grpc.local_server_credentials())
        await server.start()
        try:
            interceptor = flow_of(our_server).grpc_aio_interceptor(["read"])
            async with grpc.aio.secure_channel(
                f"localhost:{port}", grpc.local_channel_credentials(), interceptors=[interceptor]
            ) as channel:
                assert await channel.unary_unary(f"/{SERVICE}/Get")(b"") == (
                    our_server.client_id.encode()
                )
            async with grpc.aio.secure_channel(
                f"localhost:{port}", grpc.local_channel_credentials()
            ) as bare:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await bare.unary_unary(f"/{SERVICE}/Get")(b"")
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await server.stop(None)

    asyncio.run(main())


def test_interceptors_that_cannot_work() -> None:
    with pytest.raises(ConfigError):
        TokenInterceptor(None)  # type: ignore[arg-type]
    verifier = JWTVerifier(issuer="https://as.example.test", audience=AUDIENCE)
    with pytest.raises(ConfigError, match="without spaces"):
        TokenInterceptor(verifier, scopes={"/x/Y": ["a b"]})
    with pytest.raises(ConfigError, match="add TokenInterceptor"):
        access_token()
