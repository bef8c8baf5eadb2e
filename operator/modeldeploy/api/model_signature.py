"""`spec.model.signature`: the model's OpenSSF model-signing signature and whom to trust for it."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from .base import ApiModel, cel, validations

# Names and keys as Kubernetes spells them (DNS subdomain; ConfigMap/Secret data keys).
_NAME_PATTERN = r"^[a-z0-9]+([-.a-z0-9]*[a-z0-9])?$"
_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
SIGNATURE_URI_PATTERN = r"^(https?|pvc|s3|file)://.+$"
DOT_DOT_SEGMENT = r"(^|/)[.]{2}(/|$)"  # as spec.DOT_DOT_SEGMENT (spec imports this module)


class KeySelector(ApiModel):
    """One key of a Secret or ConfigMap in the ModelDeployment's namespace."""

    name: Annotated[str, Field(pattern=_NAME_PATTERN, max_length=253)]
    """Object name."""
    key: Annotated[str, Field(pattern=_KEY_PATTERN, max_length=253)]
    """Key in its data: a PEM file."""


class TrustSource(ApiModel):
    """A PEM file from a Secret or a ConfigMap (public keys and CA certificates are not secret)."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("has(self.secretKeyRef) != has(self.configMapKeyRef)",
            "set exactly one of secretKeyRef or configMapKeyRef"),
    ))

    secret_key_ref: KeySelector | None = None
    """A key of a Secret."""
    config_map_key_ref: KeySelector | None = None
    """A key of a ConfigMap."""

    @model_validator(mode="after")
    def _one_source(self) -> TrustSource:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError("set exactly one of secretKeyRef or configMapKeyRef")
        return self


class KeylessIdentity(ApiModel):
    """A Sigstore keyless signer: the identity in its short-lived certificate and the OIDC issuer that
vouched for it. Verifying needs the public Sigstore services: the init container needs internet access."""

    identity: Annotated[str, Field(min_length=1, max_length=512)]
    """The signer's identity, e.g. an e-mail address or a CI workflow URI."""
    oidc_issuer: Annotated[str, Field(pattern=r"^https://.+$", max_length=512)]
    """The OIDC issuer, e.g. https://accounts.google.com or https://token.actions.githubusercontent.com."""


class ModelSignature(ApiModel):
    """An OpenSSF model-signing signature (a Sigstore bundle) over the artifact and spec.model.version,
as written by `modeldeploy export --sign-key`. The init container verifies it after the digest and before
anything is installed; a missing, untrusted or mismatching signature fails the revision with reason
SignatureInvalid. Trust exactly one of: publicKey, certificateChain or keyless."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("[has(self.publicKey), has(self.certificateChain), has(self.keyless)].filter(x, x).size() == 1",
            "set exactly one of publicKey, certificateChain or keyless"),
        cel(f"!has(self.uri) || !self.uri.matches('{DOT_DOT_SEGMENT}')", "'..' path segments are not allowed",
            ".uri"),
    ))

    uri: Annotated[str | None, Field(pattern=SIGNATURE_URI_PATTERN, max_length=2048)] = None
    """Where the signature is, fetched with the model's credentials. Default: the model URI + `.sig`
(where export writes it). A pvc:// signature must be on the model's claim."""
    public_key: TrustSource | None = None
    """An elliptic-curve public key (PEM): signatures made with its private key (export --sign-key) are trusted."""
    certificate_chain: TrustSource | None = None
    """CA certificates (PEM): signatures whose signing certificate chains to them are trusted."""
    keyless: KeylessIdentity | None = None
    """Sigstore keyless signing: trusted when the certificate names this identity and issuer."""

    @model_validator(mode="after")
    def _one_trust(self) -> ModelSignature:
        if sum(x is not None for x in (self.public_key, self.certificate_chain, self.keyless)) != 1:
            raise ValueError("set exactly one of publicKey, certificateChain or keyless")
        return self
