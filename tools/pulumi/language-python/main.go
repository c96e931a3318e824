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
//     (with an optional `virtualenv`) is accepted;
//   - with the runtime option `providerPreload` (a list of modules), Run also starts a dynamic-
//     provider server ahead of the engine's need (pulumi-dynamic-warm.py, next to this binary),
//     which imports the SDK's server and those modules while the program runs; the provider
//     launcher hands itself over to it (see that file). One not handed over is stopped when the
//     program has finished. The program finds it in PULUMI_PYTHON_WARM_SOCKET, and may ask it
//     to read ahead (the provider's first reads, made while the program still runs).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

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
	warmName = "pulumi-dynamic-warm.py"
	// the runner's exit code for "an error was already shown to the user"
	bailExitCode = 32
)

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	runner        string
}

func main() {
	hearInterrupts()
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

// hearInterrupts undoes an interrupt ignored by whoever started the CLI: a background job of a
// non-interactive shell (as a CI runner may start `pulumi`) has SIGINT ignored, exec passes that
// on, and Go keeps it. The engine stops a plugin with SIGINT and waits 5 s before killing it, so
// every run would wait out that grace on the host it starts for About. With a handler here,
// this host ends on the interrupt as by default, and the programs and provider servers it
// starts get the default disposition at exec.
func hearInterrupts() {
	if !signal.Ignored(os.Interrupt) {
		return
	}
	interrupts := make(chan os.Signal, 1)
	signal.Notify(interrupts, os.Interrupt)
	go func() {
		<-interrupts
		os.Exit(130)
	}()
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
	// a stack without config is an empty object to the runner (`null` would fail it)
	config, err := json.Marshal(orEmptyMap(req.GetConfig()))
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

	warm := startWarmProvider(python, h.runner, pwd, req.GetInfo())
	defer warm.stop()

	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = pwd
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(),
		"PULUMI_CONFIG="+string(config),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys),
	)
	if warm != nil {
		// where the program may ask the server to read ahead (pulumi-dynamic-warm.py)
		cmd.Env = append(cmd.Env, "PULUMI_PYTHON_WARM_SOCKET="+warm.socket)
	}
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

// warmProvider is a dynamic-provider server started ahead (see pulumi-dynamic-warm.py).
type warmProvider struct {
	cmd    *exec.Cmd
	socket string
}

// startWarmProvider starts the server when the project lists modules to preload, on the
// program's interpreter, listening on a socket the launcher finds by the engine's process id
// (the parent of both): $TMPDIR/pulumi-python-warm-<uid>/<engine pid>.sock, in a directory
// only this user can enter. Anything amiss: no server, and the launcher starts the provider
// itself as before.
func startWarmProvider(python, runner, pwd string, info *pulumirpc.ProgramInfo) *warmProvider {
	var modules []string
	if info != nil && info.GetOptions() != nil {
		if listed, ok := info.GetOptions().AsMap()["providerPreload"].([]any); ok {
			for _, m := range listed {
				if name, ok := m.(string); ok && name != "" && !strings.HasPrefix(name, "-") {
					modules = append(modules, name)
				}
			}
		}
	}
	if len(modules) == 0 {
		return nil
	}
	script := filepath.Join(filepath.Dir(runner), warmName)
	if _, err := os.Stat(script); err != nil {
		return nil
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("pulumi-python-warm-%d", os.Getuid()))
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil
	}
	if st, err := os.Lstat(dir); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 ||
		st.Sys().(*syscall.Stat_t).Uid != uint32(os.Getuid()) {
		return nil
	}
	socket := filepath.Join(dir, fmt.Sprintf("%d.sock", os.Getppid()))
	_ = os.Remove(socket)
	// removed by the server once it is handed over: until then it is this host's to stop
	pending, err := os.OpenFile(socket+".pending", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil
	}
	_ = pending.Close()
	cmd := exec.Command(python, append([]string{"-u", script, "serve", socket}, modules...)...)
	cmd.Dir = pwd
	if err := cmd.Start(); err != nil {
		_ = os.Remove(socket + ".pending")
		return nil
	}
	return &warmProvider{cmd: cmd, socket: socket}
}

// stop ends a server that was not handed over; one handed over is the engine's provider now,
// and the engine ends it.
func (w *warmProvider) stop() {
	if w == nil {
		return
	}
	if _, err := os.Lstat(w.socket + ".pending"); err == nil {
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
		_ = os.Remove(w.socket)
		_ = os.Remove(w.socket + ".pending")
		return
	}
	go func() { _ = w.cmd.Wait() }()
}

func orEmptyMap(values map[string]string) map[string]string {
	if values == nil {
		return map[string]string{}
	}
	return values
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
