package deploycheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const repo = "../.."

// objects are the decoded manifests, by kind.
type objects struct {
	secrets         []*corev1.Secret
	serviceAccounts []*corev1.ServiceAccount
	cronJobs        []*batchv1.CronJob
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	files           map[string][]string // file → kinds
}

// documents splits a YAML stream at its "---" lines.
func documents(b []byte) [][]byte {
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// strict decodes one YAML document into out, failing on duplicate keys and
// on any field the type does not have.
func strict(doc []byte, out any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

func load(t *testing.T) *objects {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repo, "deploy", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests under deploy/kubernetes: %v", err)
	}
	o := &objects{files: map[string][]string{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range documents(b) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Secret":
				s := &corev1.Secret{}
				o.secrets, obj = append(o.secrets, s), s
			case "v1 ServiceAccount":
				s := &corev1.ServiceAccount{}
				o.serviceAccounts, obj = append(o.serviceAccounts, s), s
			case "batch/v1 CronJob":
				c := &batchv1.CronJob{}
				o.cronJobs, obj = append(o.cronJobs, c), c
			case "apps/v1 Deployment":
				d := &appsv1.Deployment{}
				o.deployments, obj = append(o.deployments, d), d
			case "v1 Service":
				s := &corev1.Service{}
				o.services, obj = append(o.services, s), s
			default:
				t.Fatalf("%s document %d: unexpected %s %s", f, i, tm.APIVersion, tm.Kind)
			}
			if err := strict(doc, obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", filepath.Base(f), i, tm.Kind, err)
			}
			o.files[filepath.Base(f)] = append(o.files[filepath.Base(f)], tm.Kind)
		}
	}
	return o
}

// TestStrictDecodeRejectsUnknownFields proves the decoder is strict.
func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\nautomountServiceAcountToken: false\n",
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\nmetadata: {name: y}\n",
	} {
		if err := strict([]byte(doc), &corev1.ServiceAccount{}); err == nil {
			t.Errorf("accepted:\n%s", doc)
		}
	}
}

func TestManifestsFitTogether(t *testing.T) {
	o := load(t)
	if len(o.secrets) != 1 || len(o.serviceAccounts) != 1 || len(o.cronJobs) != 1 || len(o.deployments) != 1 || len(o.services) != 1 {
		t.Fatalf("manifests %v, want one Secret, ServiceAccount, CronJob, Deployment and Service", o.files)
	}
	secret, sa := o.secrets[0], o.serviceAccounts[0]
	readme := testutil.Docs(t, repo)
	for _, want := range []string{"deploy/kubernetes/cronjob.yaml", "deploy/kubernetes/serve.yaml", "deploy/prometheus/tvm2kafka-rules.yml"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not point at %s", want)
		}
	}

	// checkPod is what both workloads share.
	checkPod := func(name string, spec corev1.PodSpec, args []string) corev1.Container {
		t.Helper()
		if spec.ServiceAccountName != sa.Name {
			t.Errorf("%s: serviceAccountName %q, want %q", name, spec.ServiceAccountName, sa.Name)
		}
		if g := spec.TerminationGracePeriodSeconds; g == nil || *g < 40 {
			t.Errorf("%s: terminationGracePeriodSeconds %v, want at least 40 (snapshot-abort within 30 s)", name, g)
		}
		if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s: not runAsNonRoot", name)
		}
		if len(spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", name, len(spec.Containers))
		}
		c := spec.Containers[0]
		if !slices.Equal(c.Args, args) {
			t.Errorf("%s: args %v, want %v", name, c.Args, args)
		}
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: no memory limit (the worker default is sized from it)", name)
		}
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: container security context %+v", name, sc)
		}
		mounts := map[string]string{}
		for _, m := range c.VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		for _, e := range c.Env {
			// Every variable is a documented setting.
			if !strings.Contains(readme, "`"+e.Name+"`") {
				t.Errorf("%s: env %s is not a setting documented in README.md", name, e.Name)
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef
				if _, ok := secret.StringData[ref.Key]; ref.Name != secret.Name || !ok {
					t.Errorf("%s: env %s refers to secret %s key %s, which secret.yaml does not hold", name, e.Name, ref.Name, ref.Key)
				}
			}
			if strings.HasSuffix(e.Name, "_FILE") {
				found := false
				for _, v := range spec.Volumes {
					if p, ok := mounts[v.Name]; ok && v.Secret != nil && v.Secret.SecretName == secret.Name {
						for _, it := range v.Secret.Items {
							if _, ok := secret.StringData[it.Key]; ok && filepath.Join(p, it.Path) == e.Value {
								found = true
							}
						}
					}
				}
				if !found {
					t.Errorf("%s: %s=%s is no file of the mounted secret", name, e.Name, e.Value)
				}
			}
		}
		return c
	}

	cj := o.cronJobs[0]
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("CronJob concurrencyPolicy %q, want Forbid", cj.Spec.ConcurrencyPolicy)
	}
	if cj.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("CronJob restartPolicy %q", cj.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy)
	}
	checkPod("CronJob", cj.Spec.JobTemplate.Spec.Template.Spec, []string{"run"})

	d := o.deployments[0]
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("Deployment: replicas %v strategy %q, want 1 and Recreate", d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	pod := d.Spec.Template
	for k, v := range d.Spec.Selector.MatchLabels {
		if pod.Labels[k] != v {
			t.Errorf("Deployment selector %s=%s does not match the pod labels %v", k, v, pod.Labels)
		}
	}
	c := checkPod("Deployment", pod.Spec, []string{"serve"})
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	addr := env["TVM2KAFKA_HTTP_ADDR"]
	if addr == "" {
		addr = ":8080"
	}
	if len(c.Ports) != 1 || fmt.Sprintf(":%d", c.Ports[0].ContainerPort) != addr[strings.LastIndex(addr, ":"):] {
		t.Fatalf("Deployment ports %+v do not match TVM2KAFKA_HTTP_ADDR %q", c.Ports, addr)
	}
	port := c.Ports[0]
	for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.String() != port.Name {
			t.Errorf("probe %+v, want GET %s on port %s", probe, path, port.Name)
		}
	}
	a := pod.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" || a["prometheus.io/port"] != fmt.Sprint(port.ContainerPort) {
		t.Errorf("pod annotations %v, want Prometheus scrape annotations for /metrics on %d", a, port.ContainerPort)
	}

	svc := o.services[0]
	for k, v := range svc.Spec.Selector {
		if pod.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not select the serve pods %v", k, v, pod.Labels)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != port.Name {
		t.Errorf("Service ports %+v, want one targeting %s", svc.Spec.Ports, port.Name)
	}
}
