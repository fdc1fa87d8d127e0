{{- define "tracejoin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tracejoin.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tracejoin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tracejoin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tracejoin.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tracejoin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "tracejoin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tracejoin.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The config tree as mounted: config.rules.slo points at the mounted SLO file when sloRules is set. */}}
{{- define "tracejoin.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if .Values.sloRules -}}
{{- $rules := default dict $config.rules -}}
{{- $_ := set $rules "slo" "/etc/tracejoin/slo.yaml" -}}
{{- $_ := set $config "rules" $rules -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* config.shutdown.timeout in seconds (30s when unset); "90s", "2m", "1m30s" forms. */}}
{{- define "tracejoin.shutdownSeconds" -}}
{{- $t := "30s" -}}
{{- if and .Values.config.shutdown .Values.config.shutdown.timeout -}}{{- $t = toString .Values.config.shutdown.timeout -}}{{- end -}}
{{- if not (regexMatch "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$" $t) -}}
{{- fail (printf "config.shutdown.timeout %q: write it as hours, minutes and seconds (e.g. 30s, 1m30s) so the chart can check terminationGracePeriodSeconds against it" $t) -}}
{{- end -}}
{{- $h := regexFind "[0-9]+h" $t | trimSuffix "h" | default "0" | atoi -}}
{{- $m := regexFind "[0-9]+m" $t | trimSuffix "m" | default "0" | atoi -}}
{{- $s := regexFind "[0-9]+s" $t | trimSuffix "s" | default "0" | atoi -}}
{{- add (mul $h 3600) (mul $m 60) $s -}}
{{- end -}}

{{/* The container port of config.metrics.listen. */}}
{{- define "tracejoin.metricsPort" -}}
{{- $listen := "0.0.0.0:9464" -}}
{{- if and .Values.config.metrics .Values.config.metrics.listen -}}{{- $listen = .Values.config.metrics.listen -}}{{- end -}}
{{- regexFind "[0-9]+$" $listen -}}
{{- end -}}
