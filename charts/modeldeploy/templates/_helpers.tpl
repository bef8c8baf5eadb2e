{{/* Names and labels. */}}
{{- define "modeldeploy.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modeldeploy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "modeldeploy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modeldeploy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "modeldeploy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "modeldeploy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: modeldeploy
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "modeldeploy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modeldeploy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "modeldeploy.image" -}}
{{- $image := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $image .Values.image.digest -}}
{{- else -}}
{{- $image -}}
{{- end -}}
{{- end -}}

{{/* A runtime image, pinned by digest when one is given: (list "image:tag" "sha256:..."). A tag can
be moved to other content; a digest cannot. */}}
{{- define "modeldeploy.pinnedImage" -}}
{{- $image := index . 0 -}}
{{- $digest := index . 1 -}}
{{- if $digest -}}
{{- printf "%s@%s" $image $digest -}}
{{- else -}}
{{- $image -}}
{{- end -}}
{{- end -}}

{{/* The operator's egress to the API server, as JSON {"cidrs": [...], "ports": [...]}: the values'
cidrs, else the addresses of the `kubernetes` EndpointSlice (written by the API server itself; the v1
Endpoints API is deprecated) looked up at install time, as /32 or /128. NetworkPolicy sees the
endpoint after the Service's DNAT, so a looked-up slice's own port (8443 on minikube, 16443 on
microk8s, random in the sandbox) joins the values' ports. Without a cluster to ask (helm template,
GitOps renderers): any address, on the values' ports only. */}}
{{- define "modeldeploy.apiServer" -}}
{{- $api := .Values.networkPolicy.apiServer -}}
{{- $cidrs := $api.cidrs | default list -}}
{{- $ports := list -}}
{{- range $api.ports -}}
{{- $ports = append $ports (int .) -}}
{{- end -}}
{{- if not $cidrs -}}
{{- $slice := lookup "discovery.k8s.io/v1" "EndpointSlice" "default" "kubernetes" -}}
{{- range ($slice.endpoints | default list) -}}
{{- range (.addresses | default list) -}}
{{- $cidrs = append $cidrs (printf "%s/%s" . (ternary "128" "32" (contains ":" .))) -}}
{{- end -}}
{{- end -}}
{{- if $cidrs -}}
{{- range ($slice.ports | default list) -}}
{{- $ports = append $ports (int .port) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $cidrs -}}
{{- $cidrs = list "0.0.0.0/0" "::/0" -}}
{{- end -}}
{{- toJson (dict "cidrs" $cidrs "ports" ($ports | uniq)) -}}
{{- end -}}

{{/*
What the operator calls in the namespaces it serves -- exactly, nothing more (see docs/install.md):
  ModelDeployments: kopf lists/watches them and patches finalizers and its annotations; the
  reconciler GETs them (the main resource) and merge-patches the status subresource -- it never
  GETs or PUTs /status, so `patch` is the only status verb.
  Children: get (apply reads first), create, merge-patch, delete; every owned kind is also listed
  and watched (kopf wakes the owner when a child changes or is deleted).
  Pods: listed to classify failures and find analysis targets, and patched by the service router
  (the modeldeploy.dev/traffic label on serving revisions' pods). ConfigMaps: smoke-test golden inputs.
  Events: core/v1 create (the operator's own; kopf's posting uses core/v1 too).
*/}}
{{- define "modeldeploy.namespacedRules" -}}
- apiGroups: ["serving.modeldeploy.dev"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["serving.modeldeploy.dev"]
  resources: ["modeldeployments/status"]
  verbs: ["patch"]
# Children carry blockOwnerDeletion; with OwnerReferencesPermissionEnforcement (on in OpenShift)
# setting it needs update on the owner's finalizers.
- apiGroups: ["serving.modeldeploy.dev"]
  resources: ["modeldeployments/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# spec.access renders one NetworkPolicy per ModelDeployment.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["get", "create"]
{{- end -}}

{{/* kopf's own needs: peering keep-alives (kopf patches the peering object, never creates it)
and the discovery of CRDs (the operator starts serving ModelDeployments when the CRD appears). */}}
{{- define "modeldeploy.crdRule" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{- define "modeldeploy.peeringVerbs" -}}
verbs: ["get", "list", "watch", "patch"]
{{- end -}}

{{/* kopf --namespace=... args or --all-namespaces, for a list of namespaces (empty: all). */}}
{{- define "modeldeploy.scopeArgs" -}}
{{- if . }}
{{- range . }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
{{- end -}}

{{/* Every namespace the release serves (JSON list; empty: every namespace): watchNamespaces, or the
namespaces of its namespace shards. */}}
{{- define "modeldeploy.servedNamespaces" -}}
{{- $namespaces := .Values.watchNamespaces | default list -}}
{{- range .Values.shards -}}
{{- $namespaces = concat $namespaces (.namespaces | default list) -}}
{{- end -}}
{{- toJson $namespaces -}}
{{- end -}}

{{- define "modeldeploy.modelPodNamespaces" -}}
{{- $namespaces := .Values.networkPolicy.modelPods.namespaces | default (include "modeldeploy.servedNamespaces" . | fromJsonArray) -}}
{{- toJson ($namespaces | default list) -}}
{{- end -}}

{{/* Sharding (values `shards`, see docs/install.md): what `values.schema.json` cannot say. */}}
{{- define "modeldeploy.validateShards" -}}
{{- $names := dict -}}
{{- $labels := dict -}}
{{- $owners := dict -}}
{{- $defaults := list -}}
{{- $kinds := dict -}}
{{- range $index, $shard := .Values.shards -}}
{{- $where := printf "shards[%d] (%s)" $index $shard.name -}}
{{- if not (or $shard.namespaces $shard.label) -}}
{{- fail (printf "%s: give it either namespaces or a label" $where) -}}
{{- end -}}
{{- if and $shard.namespaces $shard.label -}}
{{- fail (printf "%s: give it namespaces or a label, not both" $where) -}}
{{- end -}}
{{- if hasKey $names $shard.name -}}
{{- fail (printf "%s: the shard name %q is used twice; every shard needs its own (it names its Deployment and peering)" $where $shard.name) -}}
{{- end -}}
{{- $_ := set $names $shard.name true -}}
{{- if $shard.label -}}
{{- $_ := set $kinds "label" $where -}}
{{- if hasKey $labels $shard.label -}}
{{- fail (printf "%s: the label value %q is already the shard %s's; two shards would reconcile the same ModelDeployments" $where $shard.label (get $labels $shard.label)) -}}
{{- end -}}
{{- $_ := set $labels $shard.label $shard.name -}}
{{- if $shard.default -}}
{{- $defaults = append $defaults $shard.name -}}
{{- end -}}
{{- else -}}
{{- $_ := set $kinds "namespaces" $where -}}
{{- if $shard.default -}}
{{- fail (printf "%s: only a label shard can be the default (a namespace shard serves whole namespaces)" $where) -}}
{{- end -}}
{{- if $.Values.watchNamespaces -}}
{{- fail (printf "%s: namespace shards list their own namespaces; leave watchNamespaces empty" $where) -}}
{{- end -}}
{{- range $shard.namespaces -}}
{{- if hasKey $owners . -}}
{{- fail (printf "%s: namespace %q is already served by the shard %s; a namespace belongs to one shard" $where . (get $owners .)) -}}
{{- end -}}
{{- $_ := set $owners . $shard.name -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq (len $kinds) 2 -}}
{{- fail (printf "shards: %s is a label shard and %s a namespace shard; use one kind in a release (a label shard would also serve the namespace shards' objects)" (get $kinds "label") (get $kinds "namespaces")) -}}
{{- end -}}
{{- if gt (len $defaults) 1 -}}
{{- fail (printf "shards: %s are all marked default; at most one shard may be" (join ", " $defaults)) -}}
{{- end -}}
{{- end -}}

{{/* The operator Deployments of the release, as a JSON list: one without `shards` (its names are the
release's), else one per shard with its own name suffix, ServiceAccount, namespaces (empty: all),
kopf peering name (replicas of different shards must not pause each other) and shard label. */}}
{{- define "modeldeploy.operators" -}}
{{- $sa := include "modeldeploy.serviceAccountName" . -}}
{{- $operators := list -}}
{{- if not .Values.shards -}}
{{- $operators = append $operators (dict "shard" "" "suffix" "" "serviceAccount" $sa "namespaces" (.Values.watchNamespaces | default list) "peering" .Values.peering.name "label" "" "default" false "allLabels" list "replicas" .Values.replicas) -}}
{{- else -}}
{{- include "modeldeploy.validateShards" . -}}
{{- $allLabels := list -}}
{{- range .Values.shards -}}
{{- if .label -}}
{{- $allLabels = append $allLabels .label -}}
{{- end -}}
{{- end -}}
{{- range .Values.shards -}}
{{- $operators = append $operators (dict "shard" .name "suffix" (printf "-%s" .name) "serviceAccount" (printf "%s-%s" $sa .name) "namespaces" (.namespaces | default $.Values.watchNamespaces | default list) "peering" (printf "%s-%s" $.Values.peering.name .name) "label" (.label | default "") "default" (.default | default false) "allLabels" $allLabels "replicas" (.replicas | default $.Values.replicas)) -}}
{{- end -}}
{{- end -}}
{{- toJson $operators -}}
{{- end -}}

