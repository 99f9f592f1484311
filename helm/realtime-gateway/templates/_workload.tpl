{{/*
Deployment of the gateway or the worker: one image, the process chosen by the container args
(the image's ENTRYPOINT is tini, so args replace only the CMD). Call with
(dict "root" $ "component" "gateway" "script" "dist/services/gateway/main.js").
*/}}
{{- define "realtime-gateway.deployment" -}}
{{- $root := .root }}
{{- $v := index $root.Values .component }}
{{- $ctx := dict "root" $root "component" .component }}
{{- $name := include "realtime-gateway.componentName" (dict "root" $root "suffix" .component) }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "realtime-gateway.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ int $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "realtime-gateway.componentSelectorLabels" $ctx | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {{ $v.rollingUpdate.maxSurge }}
      maxUnavailable: {{ $v.rollingUpdate.maxUnavailable }}
  template:
    metadata:
      labels:
        {{- include "realtime-gateway.componentLabels" $ctx | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Rolls the pods when the chart's ConfigMaps or Secret change (not when an existingSecret changes:
        # after rotating one, run `kubectl rollout restart`).
        checksum/config: {{ print (include (print $root.Template.BasePath "/configmap.yaml") $root) (include (print $root.Template.BasePath "/secret.yaml") $root) | sha256sum }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "realtime-gateway.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ include "realtime-gateway.terminationGracePeriodSeconds" $ctx }}
      securityContext:
        runAsNonRoot: true
        runAsUser: {{ int $root.Values.podSecurity.runAsUser }}
        runAsGroup: {{ int $root.Values.podSecurity.runAsGroup }}
        fsGroup: {{ int $root.Values.podSecurity.fsGroup }}
        seccompProfile:
          type: RuntimeDefault
      {{- if $v.topologySpread.enabled }}
      topologySpreadConstraints:
        {{- range $v.topologySpread.topologyKeys }}
        - topologyKey: {{ . }}
          maxSkew: {{ int $v.topologySpread.maxSkew }}
          whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "realtime-gateway.componentSelectorLabels" $ctx | nindent 14 }}
          {{- if semverCompare ">=1.27-0" $root.Capabilities.KubeVersion.Version }}
          # Count only the pods of the current ReplicaSet, so a rollout does not skew the spread.
          matchLabelKeys:
            - pod-template-hash
          {{- end }}
        {{- end }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "realtime-gateway.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: ["node", {{ .script | quote }}]
          ports:
            - name: http
              containerPort: {{ int $root.Values.ports.http }}
              protocol: TCP
            - name: metrics
              containerPort: {{ int $root.Values.ports.metrics }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ $name }}
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            {{- if eq .component "gateway" }}
            # Advertised in the heartbeat: the other gateways forward this pod's Engine.IO requests to <POD_IP>:PORT.
            - name: POD_IP
              valueFrom:
                fieldRef:
                  fieldPath: status.podIP
            {{- end }}
            {{- with include "realtime-gateway.secretEnv" $ctx | trim }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            initialDelaySeconds: {{ int $v.livenessProbe.initialDelaySeconds }}
            periodSeconds: {{ int $v.livenessProbe.periodSeconds }}
            timeoutSeconds: {{ int $v.livenessProbe.timeoutSeconds }}
            failureThreshold: {{ int $v.livenessProbe.failureThreshold }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            initialDelaySeconds: {{ int $v.readinessProbe.initialDelaySeconds }}
            periodSeconds: {{ int $v.readinessProbe.periodSeconds }}
            timeoutSeconds: {{ int $v.readinessProbe.timeoutSeconds }}
            failureThreshold: {{ int $v.readinessProbe.failureThreshold }}
          {{- if and (eq .component "gateway") (gt (int $v.preStopSleepSeconds) 0) }}
          lifecycle:
            # Keeps the pod serving while the endpoint removal reaches the ingress; SIGTERM comes after.
            preStop:
              {{- if semverCompare ">=1.30-0" $root.Capabilities.KubeVersion.Version }}
              sleep:
                seconds: {{ int $v.preStopSleepSeconds }}
              {{- else }}
              exec:
                command: ["sleep", {{ int $v.preStopSleepSeconds | toString | quote }}]
              {{- end }}
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            privileged: false
            capabilities:
              drop: ["ALL"]
            seccompProfile:
              type: RuntimeDefault
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        # The root filesystem is read-only; Node and its libraries may still write temporary files.
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
{{- end }}
