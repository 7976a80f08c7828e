{{/*
A stateless HTTP role (gateway, api): Deployment, Service, HPA on CPU, PodDisruptionBudget.
(dict "root" $ "role" "gateway" "cfg" .Values.gateway "env" (list ...))
*/}}
{{- define "dotgit.httpRole" -}}
{{- $root := .root -}}{{- $role := .role -}}{{- $cfg := .cfg -}}
{{- $name := include "dotgit.fullname" $root -}}
{{- $sel := dict "root" $root "role" $role -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}-{{ $role }}
  labels: {{- include "dotgit.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $role }}
spec:
  {{- if not $cfg.autoscaling.enabled }}
  replicas: {{ $cfg.replicas }}
  {{- end }}
  strategy: { type: RollingUpdate, rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } }
  selector:
    matchLabels: {{- include "dotgit.selector" $sel | nindent 6 }}
  template:
    metadata:
      labels: {{- include "dotgit.selector" $sel | nindent 8 }}
    spec:
      {{- include "dotgit.podSecurity" $root | nindent 6 }}
      # Requests in flight (pushes, clones) finish within DOTGIT_DRAIN_SECONDS after SIGTERM.
      terminationGracePeriodSeconds: {{ add ($cfg.drainSeconds | default 20) 10 }}
      containers:
        - name: {{ $role }}
          image: {{ include "dotgit.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: [{{ $role }}]
          env:
            {{- include "dotgit.env" $root | nindent 12 }}
            {{- toYaml .env | nindent 12 }}
          ports: [{ name: http, containerPort: {{ $cfg.port }} }]
          readinessProbe: { httpGet: { path: /healthz, port: http }, periodSeconds: 5 }
          livenessProbe: { httpGet: { path: /healthz, port: http }, periodSeconds: 10, failureThreshold: 6 }
          resources: {{- toYaml $cfg.resources | nindent 12 }}
          securityContext: {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            {{- include "dotgit.scratchMounts" $root | nindent 12 }}
            - { name: data, mountPath: /data }
      volumes:
        {{- include "dotgit.scratchVolumes" $root | nindent 8 }}
        - name: data
          emptyDir: { sizeLimit: 1Gi }
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}-{{ $role }}
  labels: {{- include "dotgit.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $role }}
spec:
  selector: {{- include "dotgit.selector" $sel | nindent 4 }}
  ports: [{ name: http, port: {{ $cfg.port }}, targetPort: http }]
{{- if $cfg.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}-{{ $role }}
  labels: {{- include "dotgit.labels" $root | nindent 4 }}
spec:
  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: {{ $name }}-{{ $role }} }
  minReplicas: {{ $cfg.autoscaling.minReplicas }}
  maxReplicas: {{ $cfg.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource: { name: cpu, target: { type: Utilization, averageUtilization: {{ $cfg.autoscaling.targetCPUUtilizationPercentage }} } }
{{- end }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}-{{ $role }}
  labels: {{- include "dotgit.labels" $root | nindent 4 }}
spec:
  minAvailable: {{ $cfg.pdb.minAvailable }}
  selector:
    matchLabels: {{- include "dotgit.selector" $sel | nindent 6 }}
{{- end -}}
