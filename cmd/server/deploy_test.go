package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// No Docker engine runs where the tests do, so the container files are
// checked for what can go wrong without one: the configuration the image
// and the compose file give the server loads, and the files, flags and
// services they name exist.

// dockerfileEnv returns the ENV settings of the Dockerfile's last stage.
func dockerfileEnv(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Join continued lines, then read the last stage's ENV instructions.
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	env := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "FROM" {
			env = map[string]string{}
		}
		if len(f) > 1 && f[0] == "ENV" {
			for _, kv := range f[1:] {
				if k, v, ok := strings.Cut(kv, "="); ok {
					env[k] = v
				}
			}
		}
	}
	return env
}

func TestDockerfileConfigurationLoads(t *testing.T) {
	env := dockerfileEnv(t)
	if env["CACHEGATE_CONFIG"] != "/etc/cachegate/cachegate.yaml" || env["CACHEGATE_LISTEN"] == "" {
		t.Fatalf("Dockerfile ENV %v: want CACHEGATE_CONFIG and CACHEGATE_LISTEN", env)
	}
	// The image's config file is deploy/cachegate.yaml (COPY), its data
	// the /data volume.
	env["CACHEGATE_CONFIG"] = "../../deploy/cachegate.yaml"
	env["CACHEGATE_BACKEND"] = strings.Replace(env["CACHEGATE_BACKEND"], "/data/", filepath.ToSlash(t.TempDir())+"/", 1)
	setEnv(t, env)
	cfg, err := loadConfig(nil, os.ReadFile)
	if err != nil {
		t.Fatalf("the image's configuration does not load: %v", err)
	}
	if cfg.Listen != "0.0.0.0:8080" || len(cfg.Upstreams) == 0 {
		t.Fatalf("listen %q, %d upstreams", cfg.Listen, len(cfg.Upstreams))
	}

	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^COPY (?:--chown=\S+ )?([^-\s]\S*) `).FindAllStringSubmatch(string(b), -1) {
		for _, src := range strings.Fields(m[1]) {
			if src == "." {
				continue
			}
			if _, err := os.Stat(filepath.Join("../..", src)); err != nil {
				t.Errorf("Dockerfile copies %s: %v", src, err)
			}
		}
	}
	// The probe and the server are the same binary, the one ENTRYPOINT
	// runs.
	m := regexp.MustCompile(`(?m)^\s*CMD \["(\S+)", "(\S+)"\]`).FindStringSubmatch(string(b))
	if m == nil || m[2] != healthcheckFlag || !strings.Contains(string(b), `ENTRYPOINT ["`+m[1]+`"]`) {
		t.Errorf("HEALTHCHECK CMD %q: want the ENTRYPOINT's binary with %s", m, healthcheckFlag)
	}
}

type composeFile struct {
	Services map[string]struct {
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

func TestComposeFileIsConsistent(t *testing.T) {
	compose, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(compose, &c); err != nil {
		t.Fatalf("deploy/compose.yaml: %v", err)
	}
	replicas := []string{}
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join("../../deploy", src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			}
		}
		if _, ok := s.Environment["CACHEGATE_BACKEND"]; ok {
			replicas = append(replicas, name)
		}
	}
	if len(replicas) != 2 {
		t.Fatalf("cachegate services %v, want two replicas", replicas)
	}
	for _, name := range replicas {
		env := dockerfileEnv(t)
		for k, v := range c.Services[name].Environment {
			env[k] = v
		}
		token := filepath.Join(t.TempDir(), "admin_token")
		if err := os.WriteFile(token, []byte("a-long-random-token-for-the-test\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env["CACHEGATE_ADMIN_TOKEN_FILE"] = token // the secret the README has you write
		env["CACHEGATE_CONFIG"] = "../../deploy/cachegate.yaml"
		setEnv(t, env)
		cfg, err := loadConfig(nil, os.ReadFile)
		if err != nil {
			t.Fatalf("%s's configuration does not load: %v", name, err)
		}
		if !strings.HasPrefix(cfg.Backend, "mongodb://mongo:") || cfg.MetricsListen == "" {
			t.Errorf("%s: backend %q, metrics on %q; want the shared MongoDB and a metrics port", name, cfg.Backend, cfg.MetricsListen)
		}
	}
	// Prometheus scrapes, and nginx balances over, the two replicas.
	for file, want := range map[string]string{"prometheus.yml": ":9091", "nginx.conf": ":8080"} {
		b, err := os.ReadFile(filepath.Join("../../deploy", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range replicas {
			if !strings.Contains(string(b), name+want) {
				t.Errorf("deploy/%s does not name %s%s", file, name, want)
			}
		}
	}
	if s, ok := c.Secrets["admin_token"]; !ok || s.File != "./admin_token" {
		t.Errorf("secret admin_token: %+v", c.Secrets)
	}
	// The compose file's own instructions are the ones the README gives.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(compose)))
	for sc.Scan() {
		if line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "#")); strings.HasPrefix(line, "docker compose") && !strings.Contains(string(readme), line) {
			t.Errorf("the README does not show %q", line)
		}
	}
}
