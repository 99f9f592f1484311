// Command kube-strict decodes every document of a multi-document YAML stream (`helm template`
// output) into the Go type that the Kubernetes API server, the Gateway API and the Prometheus
// Operator use for its apiVersion/kind, rejecting unknown, duplicate and wrongly typed fields.
// This is the strictness that JSON-schema validators without `additionalProperties: false`
// (kubernetes-models) lack. It prints one JSON result per document and exits 0; exit 2 means bad input.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// types maps "apiVersion/kind" to a constructor of its Go type; a kind missing here is reported.
var types = map[string]func() any{
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                               func() any { return &corev1.Secret{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"v1/PersistentVolumeClaim":                func() any { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                     func() any { return &appsv1.StatefulSet{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/Ingress":            func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"gateway.networking.k8s.io/v1/HTTPRoute":  func() any { return &gatewayv1.HTTPRoute{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &monitoringv1.PrometheusRule{} },
}

type result struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Name       string   `json:"name"`
	Errors     []string `json:"errors"`
}

func main() {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(os.Stdin))
	out := json.NewEncoder(os.Stdout)
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			return
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "kube-strict: reading input:", err)
			os.Exit(2)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		_ = out.Encode(check(doc))
	}
}

func check(doc []byte) result {
	var r result
	r.Errors = []string{}
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		r.Errors = append(r.Errors, "yaml: "+err.Error())
		return r
	}
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &meta); err != nil {
		r.Errors = append(r.Errors, "json: "+err.Error())
		return r
	}
	r.APIVersion, r.Kind, r.Name = meta.APIVersion, meta.Kind, meta.Metadata.Name
	newObj, ok := types[meta.APIVersion+"/"+meta.Kind]
	if !ok {
		r.Errors = append(r.Errors, "no Go type known for "+meta.APIVersion+"/"+meta.Kind)
		return r
	}
	strictErrs, err := sigsjson.UnmarshalStrict(js, newObj())
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
	}
	for _, e := range strictErrs {
		r.Errors = append(r.Errors, e.Error())
	}
	return r
}

// stripComments drops comment-only lines so that a document holding only `# Source:` is skipped.
func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' || bytes.Equal(t, []byte("---")) {
			continue
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
