// Command tracejoin-k8s-check reads a stream of YAML documents (what `helm template` prints) on
// standard input and decodes every object strictly with the Go API types of its kind: client-go's
// scheme (the built-in kinds), prometheus-operator's monitoring/v1 (ServiceMonitor, PodMonitor,
// PrometheusRule) and KEDA's keda/v1alpha1 (ScaledObject). A field the type does not have, a field
// given twice, a value of the wrong type, or a kind none of them knows is an error; so is an
// object without a name. It prints one line per object and exits 1 on the first error.
//
//	tracejoin-k8s-check [-require Kind,Kind...] < rendered.yaml
//
// -require lists kinds that must be among the objects (so a values file that should enable the
// optional objects is shown to render them).
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

func main() {
	require := flag.String("require", "", "comma-separated kinds that must be rendered")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, *require); err != nil {
		fmt.Fprintln(os.Stderr, "tracejoin-k8s-check:", err)
		os.Exit(1)
	}
}

func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		scheme.AddToScheme, monitoringv1.AddToScheme, kedav1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func run(in io.Reader, out io.Writer, require string) error {
	s, err := newScheme()
	if err != nil {
		return err
	}
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, s, s,
		json.SerializerOptions{Yaml: true, Strict: true})
	seen := map[string]int{}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	n := 0
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the YAML stream: %w", err)
		}
		if isEmpty(doc) {
			continue
		}
		n++
		obj, gvk, err := strict.Decode(doc, nil, nil)
		if err != nil {
			return fmt.Errorf("object %d: %w\n%s", n, err, doc)
		}
		acc, err := meta.Accessor(obj)
		if err != nil {
			return fmt.Errorf("object %d (%s): %w", n, gvk, err)
		}
		if acc.GetName() == "" {
			return fmt.Errorf("object %d (%s) has no metadata.name", n, gvk)
		}
		seen[gvk.Kind]++
		fmt.Fprintf(out, "ok %s %s/%s\n", gvk.GroupVersion(), gvk.Kind, acc.GetName())
	}
	if n == 0 {
		return errors.New("no objects on standard input")
	}
	for _, kind := range strings.Split(require, ",") {
		if kind = strings.TrimSpace(kind); kind != "" && seen[kind] == 0 {
			return fmt.Errorf("no %s among the %d objects", kind, n)
		}
	}
	fmt.Fprintf(out, "%d objects decoded strictly\n", n)
	return nil
}

// isEmpty: a document of only comments and blank lines (helm prints `# Source:` headers and
// empty templates so).
func isEmpty(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			return false
		}
	}
	return true
}
