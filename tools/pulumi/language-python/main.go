// pulumi-language-python: the Python language host the Pulumi engine starts to run a Python
// program. Pulumi's own host is a Go module the module proxy does not serve, so this one is
// built beside the CLI. It does what a `pulumi preview/up/destroy/refresh` of a pip-installed
// program needs and nothing more:
//
//   - Run starts `python -u pulumi-language-python-exec ...` (the runner shipped with the Python
//     SDK's Go module, installed next to this binary) with the engine's addresses, the stack's
//     config and its secret keys in PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS, exactly as the
//     runner expects them;
//   - GetRequiredPackages reports none: resource plugins are loaded when a resource first uses
//     them (the dynamic provider `pulumi-python` is bundled next to the CLI);
//   - dependency installation is left to pip (`pip install -e .`), and only the `pip` toolchain
//     (with an optional `virtualenv`) is accepted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Version is set at build time to the Pulumi release this host is built with.
var Version = "3.0.0"

const (
	execName = "pulumi-language-python-exec"
	// the runner's exit code for "an error was already shown to the user"
	bailExitCode = 32
)

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	runner        string
}

func main() {
	args := os.Args[1:]
	// the engine passes flags (e.g. -root, -tracing) before its address, which comes last
	engine := ""
	if len(args) > 0 && !strings.HasPrefix(args[len(args)-1], "-") {
		engine = args[len(args)-1]
	}
	self, err := os.Executable()
	if err != nil {
		fail(fmt.Errorf("cannot find this executable: %w", err))
	}
	runner := filepath.Join(filepath.Dir(self), execName)
	if _, err := os.Stat(runner); err != nil {
		fail(fmt.Errorf("missing %s next to the language host: %w", execName, err))
	}
	server := &host{engineAddress: engine, runner: runner}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(s *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(s, server)
			return nil
		},
	})
	if err != nil {
		fail(fmt.Errorf("could not start the language host: %w", err))
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fail(fmt.Errorf("language host stopped: %w", err))
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
	os.Exit(1)
}

func (h *host) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

func (h *host) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) GetProgramDependencies(
	context.Context, *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

func (h *host) About(_ context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	python, err := pythonFor(req.GetInfo())
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(python, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", python, err)
	}
	version := strings.TrimPrefix(strings.TrimSpace(string(out)), "Python ")
	return &pulumirpc.AboutResponse{Executable: python, Version: version}, nil
}

func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest,
	stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	if _, err := pythonFor(req.GetInfo()); err != nil {
		return err
	}
	return stream.Send(&pulumirpc.InstallDependenciesResponse{
		Stdout: []byte("dependencies are installed with pip (pip install -e .)\n"),
	})
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	python, err := pythonFor(req.GetInfo())
	if err != nil {
		return nil, err
	}
	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(orEmpty(req.GetConfigSecretKeys()))
	if err != nil {
		return nil, err
	}
	program := "."
	if info := req.GetInfo(); info != nil && info.GetEntryPoint() != "" {
		program = info.GetEntryPoint()
	}
	pwd := req.GetPwd()
	if info := req.GetInfo(); info != nil && info.GetProgramDirectory() != "" {
		pwd = info.GetProgramDirectory()
	}
	args := []string{"-u", h.runner}
	flag := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flag("monitor", req.GetMonitorAddress())
	flag("engine", h.engineAddress)
	flag("project", req.GetProject())
	flag("stack", req.GetStack())
	flag("pwd", pwd)
	flag("dry_run", fmt.Sprint(req.GetDryRun()))
	flag("parallel", fmt.Sprint(req.GetParallel()))
	flag("organization", req.GetOrganization())
	if info := req.GetInfo(); info != nil {
		flag("root_directory", info.GetRootDirectory())
	}
	args = append(append(args, program), req.GetArgs()...)

	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = pwd
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(),
		"PULUMI_CONFIG="+string(config),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys),
	)
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if exit.ExitCode() == bailExitCode {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exit.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("could not run the Python program with %s: %v", python, err),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

func orEmpty(values []string) []string {
	if values == nil {
		return []string{}
	}
	return values
}

// pythonFor picks the interpreter: the project's virtualenv when Pulumi.yaml names one, else
// PULUMI_PYTHON_CMD, else python3 on PATH. Toolchains other than pip are refused by name.
func pythonFor(info *pulumirpc.ProgramInfo) (string, error) {
	options := map[string]any{}
	root := ""
	if info != nil {
		root = info.GetRootDirectory()
		if info.GetOptions() != nil {
			options = info.GetOptions().AsMap()
		}
	}
	if toolchain, ok := options["toolchain"].(string); ok && toolchain != "" && toolchain != "pip" {
		return "", status.Errorf(codes.InvalidArgument,
			"runtime option toolchain: %q is not supported by this language host; use pip", toolchain)
	}
	if venv, ok := options["virtualenv"].(string); ok && venv != "" {
		if !filepath.IsAbs(venv) {
			venv = filepath.Join(root, venv)
		}
		python := filepath.Join(venv, "bin", "python")
		if _, err := os.Stat(python); err != nil {
			return "", fmt.Errorf("the virtualenv %s has no bin/python: create it and pip install "+
				"the project into it", venv)
		}
		return python, nil
	}
	if cmd := os.Getenv("PULUMI_PYTHON_CMD"); cmd != "" {
		return cmd, nil
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		return "", errors.New("python3 is not on PATH (or set PULUMI_PYTHON_CMD)")
	}
	return python, nil
}
