"""`ModelDeployment.spec`: what the user asks for. Docstrings are the `kubectl explain` text."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from .access import Access
from .base import ApiModel, cel, validations
from .model_signature import ModelSignature
from .types import Bound, Duration, Quantity

ModelFormat = Literal["onnx", "tensorrt_plan", "torchscript"]
RuntimeKind = Literal["onnx", "triton"]
MetricName = Literal["successRate", "latencyP99", "latencyMean", "queueTime"]

MODEL_NAME_PATTERN = r"^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$"
# oci:// is refused (no OCI artifact client yet): the CRD says so rather than the pod at fetch time.
URI_PATTERN = r"^(https?|pvc|s3|file)://.+$"
# pvc://CLAIM/PATH: CLAIM is a PersistentVolumeClaim name (DNS subdomain), so it can never be `..`.
PVC_URI_PATTERN = r"^pvc://[a-z0-9]+([-.a-z0-9]*[a-z0-9])?/[^/].*$"
# A `..` path segment: refused in pvc:// and file:// URIs (it would leave the mounted volume).
DOT_DOT_SEGMENT = r"(^|/)[.]{2}(/|$)"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]+([-.a-z0-9]*[a-z0-9])?$"
# A size in bytes: whole bytes with an optional decimal or binary suffix (no millis, no exponents).
SIZE_PATTERN = r"^[1-9][0-9]*(k|M|G|T|Ki|Mi|Gi|Ti)?$"
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
# A Secret data key (ConfigMap/Secret key rules).
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
GPU_RESOURCE_PATTERN = r"^nvidia\.com/(gpu|mig-[1-7]g\.[0-9]+gb)$"
CHECK_NAME_PATTERN = r"^[a-zA-Z][a-zA-Z0-9_-]*$"


class SecretRef(ApiModel):
    """A Secret in the ModelDeployment's namespace."""

    name: Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]
    """Secret name."""


class Credentials(ApiModel):
    """How the init container (`modelserver fetch`) authenticates to the model source. The serving
container never sees them."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("has(self.secretRef) || has(self.serviceAccountName)",
            "credentials need secretRef or serviceAccountName"),
    ))

    secret_ref: SecretRef | None = None
    """Secret mounted read-only into the init container only. Keys: `token` (an HTTP bearer token for
https:// sources), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION and
AWS_ENDPOINT_URL (s3:// sources)."""
    service_account_name: Annotated[str | None, Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)] = None
    """ServiceAccount the pods run as, for cloud workload identity (IRSA, GKE or Azure Workload Identity),
as KServe does. Its API token is still not mounted into the pods."""


class SecretKeyRef(ApiModel):
    """One key of a Secret in the ModelDeployment's namespace."""

    name: Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]
    """Secret name."""
    key: Annotated[str, Field(pattern=SECRET_KEY_PATTERN, max_length=253)] = "identity"
    """Key in the Secret's data."""


class Encryption(ApiModel):
    """The artifact is encrypted with age (age-encryption.org/v1, X25519 recipients), e.g. by
`modeldeploy export --encrypt-to`. The init container decrypts it into a memory-backed volume only."""

    key_secret_ref: SecretKeyRef
    """Secret key holding the age identity (AGE-SECRET-KEY-1...; an age identity file, comments allowed).
Mounted into the init container only; the serving container never sees it."""


class ModelSource(ApiModel):
    """Where the model comes from and how it is verified before it is served."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("has(self.digest) || (has(self.allowUnverified) && self.allowUnverified)",
            "digest is required unless allowUnverified is true", ".digest"),
        cel("!self.uri.startsWith('oci://')",
            "oci:// model sources are not supported: use https://, s3://, pvc:// or file://", ".uri"),
        cel(f"!self.uri.startsWith('pvc://') || self.uri.matches('{PVC_URI_PATTERN}')",
            "pvc:// URIs are pvc://CLAIM/PATH with CLAIM a PersistentVolumeClaim name", ".uri"),
        cel(f"!(self.uri.startsWith('pvc://') || self.uri.startsWith('file://'))"
            f" || !self.uri.matches('{DOT_DOT_SEGMENT}')",
            "'..' path segments are not allowed in pvc:// and file:// URIs", ".uri"),
    ))

    name: Annotated[str | None, Field(pattern=MODEL_NAME_PATTERN, max_length=128)] = None
    """Model name on the inference protocol (/v2/models/{name}). Default: metadata.name."""
    uri: Annotated[str, Field(pattern=URI_PATTERN, max_length=2048)]
    """Model artifact: https://host/path/model.onnx, pvc://claim/path, s3://bucket/key or file:///path
(oci:// is refused)."""
    digest: Annotated[str | None, Field(pattern=DIGEST_PATTERN, max_length=71)] = None
    """sha256 of the artifact (sha256:<64 hex>). Verified by the init container before anything is served."""
    allow_unverified: bool = False
    """Serve the artifact without a digest. Only for development: the only way to skip the digest check."""
    format: ModelFormat = "onnx"
    """Artifact format. tensorrt_plan and torchscript need runtime.kind triton."""
    version: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    """Model version directory in the model repository, and the model's monotonic version: a revision whose
version is lower than the stable revision's is refused (DowngradeRefused) unless allowDowngrade is true. When
the model is signed, the signature covers this number too."""
    allow_downgrade: bool = False
    """Allow a lower version than the stable revision's, e.g. a deliberate GitOps revert. It changes no pod."""
    signature: ModelSignature | None = None
    """Verify the model's OpenSSF model-signing signature before it is served."""
    max_size: Annotated[str | None, Field(pattern=SIZE_PATTERN, max_length=24)] = None
    """Largest artifact accepted, a string such as 3Gi or 500M (default 4Gi). The init container refuses a bigger one
(ArtifactTooLarge); it also sizes the model volume's sizeLimit and the pods' ephemeral-storage request."""
    credentials: Credentials | None = None
    """Credentials of a private source, seen by the init container only."""
    encryption: Encryption | None = None
    """Decrypt the artifact (after its digest, which covers the ciphertext, is verified) into memory only:
the model volume becomes an emptyDir of medium Memory, so plaintext weights never touch the node's disk.
It counts against the pods' memory: leave room for maxSize in resources.limits.memory."""

    @model_validator(mode="after")
    def _checked_source(self) -> ModelSource:
        # The same rules as the CEL ones, for objects that reach the operator without admission.
        if self.digest is None and not self.allow_unverified:
            raise ValueError("digest is required unless allowUnverified is true")
        if self.uri.startswith("pvc://") and not re.match(PVC_URI_PATTERN, self.uri):
            raise ValueError("uri: pvc:// URIs are pvc://CLAIM/PATH with CLAIM a PersistentVolumeClaim name")
        if self.uri.startswith(("pvc://", "file://")) and re.search(DOT_DOT_SEGMENT, self.uri):
            raise ValueError("uri: '..' path segments are not allowed in pvc:// and file:// URIs")
        signed_at = self.signature.uri if self.signature is not None else None
        model_claim = self.uri.split("/")[2] if self.uri.startswith("pvc://") else None
        if signed_at and signed_at.startswith("pvc://") and signed_at.split("/")[2] != model_claim:
            raise ValueError("signature.uri: a pvc:// signature must be on the model's claim (pvc://CLAIM/...)")
        if signed_at and re.search(DOT_DOT_SEGMENT, signed_at):
            raise ValueError("signature.uri: '..' path segments are not allowed")
        return self


class Batching(ApiModel):
    """Dynamic batching: concurrent requests are merged into one batch on the server."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("!has(self.preferredBatchSizes) || !has(self.maxBatchSize)"
            " || self.preferredBatchSizes.all(s, s <= self.maxBatchSize)",
            "preferredBatchSizes must not exceed maxBatchSize", ".preferredBatchSizes"),
    ))

    max_batch_size: Annotated[int, Field(ge=1, le=4096)] = 8
    """Largest batch the server forms."""
    max_queue_delay_microseconds: Annotated[int, Field(ge=0, le=10_000_000)] = 1000
    """How long a request may wait for others to fill a batch."""
    preferred_batch_sizes: Annotated[list[Annotated[int, Field(ge=1)]] | None, Field(max_length=16)] = None
    """Batch sizes the server prefers to form (Triton's preferred_batch_size)."""


# modelserver's switch for its test-only fault injection: a platform's (the sandbox kubelet's), never a spec's.
TEST_FAULTS_FLAG = "MODELSERVER_TEST_FAULTS"


class EnvVar(ApiModel):
    """An environment variable of the inference container."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel(f"self.name != '{TEST_FAULTS_FLAG}'",
            f"{TEST_FAULTS_FLAG} is reserved: fault injection is for test beds only, never set by a spec", ".name"),
    ))

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=256)]
    """Variable name (not MODELSERVER_TEST_FAULTS, which only a test bed sets)."""
    value: Annotated[str, Field(max_length=32768)] = ""
    """Variable value."""

    @model_validator(mode="after")
    def _not_reserved(self) -> EnvVar:
        # The CEL rule's twin, for objects that reach the operator without admission.
        if self.name == TEST_FAULTS_FLAG:
            raise ValueError(f"name: {TEST_FAULTS_FLAG} is reserved: fault injection is for test beds only, "
                             "never set by a spec")
        return self


class Runtime(ApiModel):
    """The inference server that runs the model."""

    kind: RuntimeKind = "onnx"
    """onnx: the modelserver image (ONNX Runtime). triton: NVIDIA Triton Inference Server."""
    image: Annotated[str | None, Field(max_length=512)] = None
    """Override the runtime image (default: the operator's configured image for the kind)."""
    batching: Batching | None = None
    """Dynamic batching settings. Unset: no server-side batching."""
    env: Annotated[list[EnvVar], Field(max_length=64)] = Field(default_factory=list)
    """Extra environment variables of the inference container."""


class Gpu(ApiModel):
    """GPUs per pod."""

    count: Annotated[int, Field(ge=1, le=16)] = 1
    """GPUs (or MIG slices) per pod."""
    resource_name: Annotated[str, Field(pattern=GPU_RESOURCE_PATTERN, max_length=63)] = "nvidia.com/gpu"
    """Extended resource: nvidia.com/gpu, or a MIG profile such as nvidia.com/mig-1g.10gb."""
    product: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$", max_length=63)] = None
    """GPU product; pods are pinned with the node label nvidia.com/gpu.product (GPU feature discovery)."""


class Toleration(ApiModel):
    """A pod toleration (core/v1 Toleration)."""

    key: Annotated[str | None, Field(max_length=316)] = None
    """Taint key the toleration applies to. Empty with operator Exists matches all taints."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Exists or Equal."""
    value: Annotated[str | None, Field(max_length=63)] = None
    """Taint value for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match. Empty matches all effects."""
    toleration_seconds: Annotated[int | None, Field(ge=0)] = None
    """For NoExecute: how long the pod stays bound after the taint appears."""


class Resources(ApiModel):
    """Compute resources and placement of the inference pods."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    """Resource requests of the inference container (cpu, memory, ...)."""
    limits: dict[str, Quantity] = Field(default_factory=dict)
    """Resource limits of the inference container. GPU limits come from gpu."""
    gpu: Gpu | None = None
    """GPUs per pod. Unset: CPU only."""
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(default_factory=dict)
    """Node labels the pods must match (merged with the GPU product label)."""
    tolerations: Annotated[list[Toleration], Field(max_length=32)] = Field(default_factory=list)
    """Extra tolerations. The nvidia.com/gpu taint is tolerated automatically when GPUs are requested."""
    affinity: dict[str, Any] = Field(default_factory=dict)
    """Pod affinity (core/v1 Affinity), passed through unchanged."""
    runtime_class_name: Annotated[str | None, Field(max_length=253)] = None
    """RuntimeClass of the pods, e.g. nvidia."""


class ScalingMetric(ApiModel):
    """One HPA metric."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("self.type == 'queueTime' ? has(self.targetAverageMicroseconds) : has(self.targetUtilization)",
            "cpu and memory metrics need targetUtilization; queueTime needs targetAverageMicroseconds"),
    ))

    type: Literal["cpu", "memory", "queueTime"]
    """cpu or memory (Resource metrics), or queueTime (Pods metric nv_inference_queue_duration_us via an adapter)."""
    target_utilization: Annotated[int | None, Field(ge=1, le=100)] = None
    """Target average utilization in percent of the request (cpu, memory)."""
    target_average_microseconds: Annotated[int | None, Field(ge=1)] = None
    """Target average queue time per request in microseconds (queueTime)."""


class Autoscaling(ApiModel):
    """Horizontal autoscaling of the stable revision (an autoscaling/v2 HorizontalPodAutoscaler)."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("!has(self.minReplicas) || !has(self.maxReplicas) || self.maxReplicas >= self.minReplicas",
            "maxReplicas must be >= minReplicas", ".maxReplicas"),
        cel("!has(self.metrics) || self.metrics.all(m, self.metrics.exists_one(n, n.type == m.type))",
            "each metric type may appear only once", ".metrics"),
    ))

    min_replicas: Annotated[int, Field(ge=1, le=1000)] = 1
    """Lower bound of the replica count."""
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 1
    """Upper bound of the replica count."""
    metrics: Annotated[list[ScalingMetric], Field(max_length=8)] = Field(default_factory=list)
    """Scaling metrics. Empty: cpu at 80% utilization."""
    behavior: dict[str, Any] = Field(default_factory=dict)
    """HPA scaling behavior (autoscaling/v2 HorizontalPodAutoscalerBehavior), passed through."""


class Step(ApiModel):
    """One canary step: route `weight` percent to the canary, then hold for `pause` while analysing."""

    weight: Annotated[int, Field(ge=1, le=100)]
    """Percent of traffic to the canary during this step."""
    pause: Duration = "0s"
    """How long to hold this step. The step ends after the pause and at least one passed analysis."""


class ParentRef(ApiModel):
    """A Gateway the HTTPRoute attaches to."""

    name: Annotated[str, Field(max_length=253)]
    """Gateway name."""
    namespace: Annotated[str | None, Field(max_length=63)] = None
    """Gateway namespace (default: the ModelDeployment's)."""
    section_name: Annotated[str | None, Field(max_length=253)] = None
    """Listener name on the Gateway."""


class GatewaySpec(ApiModel):
    """Gateway API settings of the gatewayAPI router."""

    parent_refs: Annotated[list[ParentRef], Field(min_length=1, max_length=16)]
    """Gateways the HTTPRoute attaches to."""
    hostnames: Annotated[list[Annotated[str, Field(max_length=253)]], Field(max_length=16)] = Field(
        default_factory=list)
    """Hostnames of the HTTPRoute."""


class Traffic(ApiModel):
    """How traffic is split between the stable and the canary revision."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("!has(self.router) || self.router != 'gatewayAPI' || has(self.gateway)",
            "router gatewayAPI needs gateway.parentRefs", ".gateway"),
    ))

    router: Literal["service", "gatewayAPI"] = "service"
    """service: one Service over all serving revisions, weight by replica ratio (no dependencies).
gatewayAPI: an HTTPRoute with weighted backendRefs to per-revision Services."""
    gateway: GatewaySpec | None = None
    """Gateway API settings (router gatewayAPI)."""


class Provider(ApiModel):
    """Where analysis metrics come from."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("!has(self.type) || self.type != 'prometheus' || has(self.address)",
            "provider type prometheus needs address", ".address"),
    ))

    type: Literal["direct", "prometheus"] = "direct"
    """direct: the operator scrapes each ready pod's /metrics. prometheus: PromQL over the HTTP API."""
    address: Annotated[str | None, Field(pattern=r"^https?://.+$", max_length=2048)] = None
    """Prometheus base URL (type prometheus), e.g. http://prometheus.monitoring:9090."""


class Check(ApiModel):
    """One analysis check: a builtin metric or a custom PromQL query, with at least one bound: absolute
(min, max) or relative to the stable revision (maxDrop, maxRatio)."""

    model_config = ConfigDict(json_schema_extra={
        **validations(
            cel("has(self.metric) != has(self.query)", "set exactly one of metric or query"),
            cel("!has(self.query) || has(self.name)", "a check with a query needs a name", ".name"),
            cel("!has(self.maxDrop) || (has(self.metric) && self.metric == 'successRate')",
                "maxDrop applies to metric successRate only", ".maxDrop"),
        ),
        # At least one bound. Not a CEL rule: CEL cannot see the untyped `max` (see types.Bound).
        "anyOf": [{"required": [bound]} for bound in ("min", "max", "maxDrop", "maxRatio")],
    })

    name: Annotated[str | None, Field(pattern=CHECK_NAME_PATTERN, max_length=63)] = None
    """Check name in status and events (default: the metric)."""
    metric: MetricName | None = None
    """Builtin metric: successRate, latencyP99, latencyMean or queueTime."""
    query: Annotated[str | None, Field(max_length=4096)] = None
    """Custom PromQL (prometheus provider) with {{namespace}}, {{name}}, {{revision}} and {{interval}}."""
    min: float | None = None
    """Lower bound of the canary's value."""
    max: Bound | None = None
    """Upper bound of the canary's value: a number (0.01), or a duration (250ms) for latency metrics."""
    max_drop: Annotated[float | None, Field(ge=0, le=1)] = None
    """successRate: largest allowed drop below the stable's rate in the same interval (0.005 = 0.5 points)."""
    max_ratio: Annotated[float | None, Field(gt=0)] = None
    """Largest allowed canary/stable ratio of the value in the same interval (1.2 = 20% worse)."""

    @property
    def display_name(self) -> str:
        return self.name or self.metric or "custom"


def _default_checks() -> list[Check]:
    return [Check(metric="successRate", min=0.99), Check(metric="latencyP99", max_ratio=1.5)]


class Analysis(ApiModel):
    """Canary analysis: every interval each check gives pass, fail or inconclusive."""

    provider: Provider = Field(default_factory=Provider)
    """Metric source."""
    interval: Duration = "30s"
    """Analysis interval."""
    failure_limit: Annotated[int, Field(ge=1, le=100)] = 2
    """Consecutive failed intervals that roll the canary back."""
    min_samples: Annotated[int, Field(ge=1, le=10_000_000)] = 200
    """Requests per revision and interval below which the interval is inconclusive (never passed)."""
    inconclusive_limit: Annotated[int, Field(ge=1, le=100)] = 3
    """Inconclusive intervals in a row after which onInconclusive applies (as Argo's inconclusiveLimit)."""
    on_inconclusive: Literal["pause", "rollback"] = "pause"
    """pause: the rollout pauses with reason AnalysisInconclusive until `kubectl modeldeploy resume`.
rollback: the canary is rolled back with reason AnalysisInconclusive."""
    checks: Annotated[list[Check], Field(max_length=16)] = Field(
        default_factory=_default_checks)
    """Checks run every interval."""


class ConfigMapRef(ApiModel):
    """A ConfigMap in the ModelDeployment's namespace."""

    name: Annotated[str, Field(max_length=253)]
    """ConfigMap name."""


class SmokeTest(ApiModel):
    """Golden requests sent to canary and stable before any traffic; outputs must agree."""

    config_map_ref: ConfigMapRef
    """ConfigMap whose data keys hold Open Inference Protocol JSON infer requests."""
    tolerance: Annotated[float, Field(ge=0)] = 1e-3
    """Largest allowed absolute difference between canary and stable outputs."""


class Gates(ApiModel):
    """Checks before the canary gets any traffic."""

    signature: bool = True
    """The canary's inputs and outputs (names, dtypes, shapes) must match the stable's."""
    smoke_test: SmokeTest | None = None
    """Golden-input comparison between canary and stable."""


def _default_steps() -> list[Step]:
    return [Step(weight=10, pause="1m"), Step(weight=50, pause="1m")]


class Rollout(ApiModel):
    """How a new revision replaces the stable one."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("!has(self.strategy) || self.strategy != 'canary' || !has(self.steps) || size(self.steps) > 0",
            "a canary rollout needs at least one step", ".steps"),
    ))

    strategy: Literal["canary", "immediate"] = "canary"
    """canary: shift traffic step by step with analysis. immediate: switch once the new revision is ready."""
    steps: Annotated[list[Step], Field(max_length=20)] = Field(
        default_factory=_default_steps)
    """Canary steps with strictly increasing weights."""
    progress_deadline_seconds: Annotated[int, Field(ge=30, le=86400)] = 600
    """Seconds a rollout may go without progress (a stage or step begun, gates passed, more pods ready)
before it is rolled back, as a Deployment's. It does not run while paused or while metrics are
unavailable."""
    image_pull_grace_seconds: Annotated[int, Field(ge=0, le=3600)] = 60
    """Seconds an image pull may keep failing (ErrImagePull, ImagePullBackOff: a registry's rate limit)
before the revision is rejected with reason ImagePull. An invalid image name is rejected at once."""
    scale_down_delay_seconds: Annotated[int, Field(ge=0, le=3600)] = 5
    """Seconds a replaced revision (the old stable after a promotion, the canary after a rollback) keeps
running after traffic left it, so that in-flight requests finish and routes converge."""
    traffic: Traffic = Field(default_factory=Traffic)
    """Traffic routing."""
    analysis: Analysis = Field(default_factory=Analysis)
    """Canary analysis."""
    gates: Gates = Field(default_factory=Gates)
    """Checks before any traffic reaches the canary."""


class ModelDeploymentSpec(ApiModel):
    """Desired state of a served model."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("!has(self.model.format) || self.model.format == 'onnx'"
            " || (has(self.runtime) && has(self.runtime.kind) && self.runtime.kind == 'triton')",
            "model.format tensorrt_plan and torchscript need runtime.kind triton", ".runtime.kind"),
        cel("!has(self.access) || !has(self.access.requireToken) || !self.access.requireToken"
            " || !has(self.runtime) || !has(self.runtime.kind) || self.runtime.kind == 'onnx'",
            "access.requireToken needs runtime.kind onnx (Triton pods rely on the NetworkPolicy)",
            ".access.requireToken"),
        cel("!has(self.access) || !has(self.access.serviceAccountName) || !has(self.model.credentials)"
            " || !has(self.model.credentials.serviceAccountName)"
            " || self.model.credentials.serviceAccountName == self.access.serviceAccountName",
            "access.serviceAccountName and model.credentials.serviceAccountName name the pods' one ServiceAccount:"
            " they must be equal", ".access.serviceAccountName"),
    ))

    model: ModelSource
    """The model artifact."""
    runtime: Runtime = Field(default_factory=Runtime)
    """The inference server."""
    resources: Resources = Field(default_factory=Resources)
    """Compute resources and placement."""
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    """Autoscaling of the stable revision."""
    rollout: Rollout = Field(default_factory=Rollout)
    """Rollout of new revisions."""
    access: Access | None = None
    """Who may call the model (NetworkPolicy, bearer tokens). Unset: no restriction by the operator."""

    @model_validator(mode="after")
    def _checked_access(self) -> ModelDeploymentSpec:
        # The CEL rules again, for objects that reach the operator without admission.
        access = self.access
        if access is None:
            return self
        if access.require_token and self.runtime.kind != "onnx":
            raise ValueError("access.requireToken needs runtime.kind onnx (Triton pods rely on the NetworkPolicy)")
        credentials = self.model.credentials
        if (access.service_account_name and credentials is not None and credentials.service_account_name
                and credentials.service_account_name != access.service_account_name):
            raise ValueError("access.serviceAccountName and model.credentials.serviceAccountName must be equal")
        return self
