// Command otelcol-tracejoin is the OpenTelemetry Collector that tests/red_collector.rs runs beside
// tracejoin: the Kafka receiver, the spanmetrics connector and the Prometheus exporter. It is what
// the Collector builder (ocb) generates for a manifest listing those three components; written by
// hand so the build needs nothing but the Go module proxy. Build it with scripts/collector.sh.
package main

import (
	"log"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"
)

func main() {
	info := component.BuildInfo{
		Command:     "otelcol-tracejoin",
		Description: "OpenTelemetry Collector for tracejoin's spanmetrics cross-check",
		Version:     "0.165.1",
	}
	set := otelcol.CollectorSettings{
		BuildInfo: info,
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
				},
			},
		},
	}
	if err := otelcol.NewCommand(set).Execute(); err != nil {
		log.Fatalf("collector server run finished with error: %v", err)
	}
}
