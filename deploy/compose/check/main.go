// Command tracejoin-compose-check loads a compose file with compose-spec's loader (compose-go, the
// library Docker Compose itself uses): the compose-spec JSON schema, interpolation, the model's
// types and its consistency checks (depends_on, volumes and networks that exist). Then it checks
// what the loader leaves to run time: every bind mount's source and every build context exists
// on disk. It prints one line per service and exits 1 on the first problem.
//
//	tracejoin-compose-check FILE
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tracejoin-compose-check FILE")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "tracejoin-compose-check:", err)
		os.Exit(1)
	}
}

func run(file string) error {
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
		cli.WithInterpolation(true),
	)
	if err != nil {
		return err
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		return err
	}
	names := project.ServiceNames()
	sort.Strings(names)
	for _, name := range names {
		svc := project.Services[name]
		if svc.Image == "" && svc.Build == nil {
			return fmt.Errorf("service %s: neither image nor build", name)
		}
		if svc.Build != nil {
			if _, err := os.Stat(svc.Build.Context); err != nil {
				return fmt.Errorf("service %s: build context: %w", name, err)
			}
			df := svc.Build.Dockerfile
			if !filepath.IsAbs(df) {
				df = filepath.Join(svc.Build.Context, df)
			}
			if _, err := os.Stat(df); err != nil {
				return fmt.Errorf("service %s: Dockerfile: %w", name, err)
			}
		}
		for _, v := range svc.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				return fmt.Errorf("service %s: bind mount %s: %w", name, v.Target, err)
			}
		}
		fmt.Printf("ok service %s (%d volumes)\n", name, len(svc.Volumes))
	}
	fmt.Printf("%s: %d services valid\n", project.Name, len(names))
	return nil
}
