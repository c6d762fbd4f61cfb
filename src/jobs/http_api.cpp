// Routes of the control-plane API on cpp-httplib. Handlers are thin: authenticate, parse, call
// JobService / Registry, render OpenAI-shaped JSON. Every failure path goes through send_error so the
// body is always an OpenAI error object.
#include "jobs/http_api.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "jobs/exporters.h"
#include "jobs/job_spec.h"

namespace tl::jobs {

using nlohmann::json;
using registry::AdapterRecord;
using registry::JobRecord;
using registry::Tenant;

namespace {

const char* error_type(int http) {
  switch (http) {
    case 401: return "authentication_error";
    case 429: return "insufficient_quota";
    default: return http >= 500 ? "server_error" : "invalid_request_error";
  }
}

const char* default_code(StatusCode c) {
  switch (c) {
    case StatusCode::kUnauthenticated: return "invalid_api_key";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kResourceExhausted: return "quota_exceeded";
    case StatusCode::kFailedPrecondition: return "invalid_state";
    case StatusCode::kInvalidArgument: return "invalid_value";
    default: return "";
  }
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, const Status& st, const ErrorDetail& d = {}) {
  // A body over the limit is a size problem of this request (413), not a quota (429).
  int http = d.code == "request_too_large" ? 413 : st.http_status();
  std::string code = d.code.empty() ? default_code(st.code()) : d.code;
  json err = {{"message", st.message()},
              {"type", error_type(http)},
              {"param", d.param.empty() ? json(nullptr) : json(d.param)},
              {"code", code.empty() ? json(nullptr) : json(code)}};
  send_json(res, http, {{"error", err}});
}

json nullable(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }
json nullable(int64_t v) { return v == 0 ? json(nullptr) : json(v); }

json file_json(const registry::FileRecord& f) {
  return {{"object", "file"},      {"id", f.id},
          {"bytes", f.bytes},      {"created_at", f.created_at},
          {"filename", f.filename}, {"purpose", f.purpose},
          {"status", "processed"}, {"status_details", nullptr},
          {"sha256", f.sha256},    {"line_count", f.line_count},
          {"format", f.format},    {"token_estimate", f.token_estimate}};
}

json job_json(const JobRecord& j) {
  json hp = json::parse(j.hyperparameters, nullptr, false);
  if (hp.is_discarded()) hp = json::object();
  json error = nullptr;
  if (!j.error.empty()) {
    error = json::parse(j.error, nullptr, false);
    if (error.is_discarded()) error = {{"code", "error"}, {"message", j.error}, {"param", nullptr}};
  }
  json method = {{"type", j.method}};
  method[j.method] = {{"hyperparameters", hp}};
  return {{"object", "fine_tuning.job"},
          {"id", j.id},
          {"model", j.model},
          {"created_at", j.created_at},
          {"finished_at", nullable(j.finished_at)},
          {"fine_tuned_model", nullable(j.fine_tuned_model)},
          {"organization_id", j.tenant_id},
          {"result_files", json::array()},
          {"status", j.status},
          {"validation_file", nullable(j.validation_file)},
          {"training_file", j.training_file},
          {"hyperparameters", hp},
          {"method", method},
          {"trained_tokens", j.status == "succeeded" ? json(j.trained_tokens) : json(nullptr)},
          {"error", error},
          {"user_provided_suffix", nullable(j.suffix)},
          {"seed", j.seed},
          {"estimated_finish", nullable(j.estimated_finish)},
          {"integrations", json::array()},
          {"metadata", nullptr},
          {"tuneloop",
           {{"tier", registry::tier_name(j.tier)},
            {"estimated_device_hours", j.estimated_device_hours},
            {"estimated_cost", j.estimated_cost},
            {"memory_mb", j.memory_mb},
            {"estimated_tokens", j.trained_tokens},
            {"device", nullable(j.device_id)},
            {"attempts", j.attempts},
            {"started_at", nullable(j.started_at)}}}};
}

json adapter_json(const AdapterRecord& a) {
  return {{"object", "adapter"},   {"id", a.id},
          {"name", a.name},        {"domain", a.domain},
          {"base_model", a.base_model}, {"job_id", nullable(a.job_id)},
          {"state", registry::adapter_state_name(a.state)}, {"active", a.active},
          {"sha256", nullable(a.sha256)}, {"created_at", a.created_at},
          {"updated_at", a.updated_at}};
}

// Parses `limit` (1..100, default 20) and `after`.
Result<registry::Page> page_of(const httplib::Request& req) {
  registry::Page p;
  if (req.has_param("after")) p.after = req.get_param_value("after");
  if (req.has_param("limit")) {
    const std::string v = req.get_param_value("limit");
    char* end = nullptr;
    long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end || n < 1 || n > 100) return invalid_argument("limit must be an integer in [1, 100], got '{}'", v);
    p.limit = n;
  }
  return p;
}

// "auto" or a number of the given kind; absent → nullopt.
template <typename T>
Status hyper(const json& hp, const char* key, std::optional<T>* out, ErrorDetail* d, double lo, double hi) {
  if (!hp.contains(key) || hp[key].is_null()) return Status::ok();
  const json& v = hp[key];
  if (v.is_string() && v.get<std::string>() == "auto") return Status::ok();
  bool ok = std::is_integral_v<T> ? v.is_number_integer() : v.is_number();
  if (!ok || v.get<double>() < lo || v.get<double>() > hi) {
    *d = {std::string("hyperparameters.") + key, "invalid_value"};
    return invalid_argument("hyperparameters.{} must be \"auto\" or {} in [{}, {}], got {}", key,
                            std::is_integral_v<T> ? "an integer" : "a number", lo, hi, v.dump());
  }
  *out = v.get<T>();
  return Status::ok();
}

Result<JobRequest> parse_job_request(const json& body, ErrorDetail* d) {
  if (!body.is_object()) return invalid_argument("request body must be a JSON object");
  JobRequest r;
  auto str = [&](const char* key, std::string* out, bool required) -> Status {
    if (!body.contains(key) || body[key].is_null()) {
      if (required) {
        *d = {key, "missing_required_parameter"};
        return invalid_argument("missing required parameter '{}'", key);
      }
      return Status::ok();
    }
    if (!body[key].is_string()) {
      *d = {key, "invalid_type"};
      return invalid_argument("'{}' must be a string, got {}", key, body[key].dump());
    }
    *out = body[key].get<std::string>();
    return Status::ok();
  };
  TL_TRY(str("model", &r.model, true));
  TL_TRY(str("training_file", &r.training_file, true));
  TL_TRY(str("validation_file", &r.validation_file, false));
  TL_TRY(str("suffix", &r.suffix, false));
  TL_TRY(str("tuneloop_spec", &r.tuneloop_spec, false));
  if (body.contains("seed") && !body["seed"].is_null()) {
    if (!body["seed"].is_number_integer()) {
      *d = {"seed", "invalid_type"};
      return invalid_argument("'seed' must be an integer, got {}", body["seed"].dump());
    }
    r.seed = body["seed"].get<int64_t>();
  }
  json hp = body.value("hyperparameters", json::object());
  if (body.contains("method") && !body["method"].is_null()) {
    const json& m = body["method"];
    if (!m.is_object() || !m.contains("type") || !m["type"].is_string()) {
      *d = {"method", "invalid_value"};
      return invalid_argument("'method' must be an object with a string 'type' (supervised or dpo)");
    }
    r.method = m["type"].get<std::string>();
    if (m.contains(r.method) && m[r.method].is_object() && m[r.method].contains("hyperparameters"))
      hp = m[r.method]["hyperparameters"];
  }
  if (!hp.is_object()) {
    *d = {"hyperparameters", "invalid_type"};
    return invalid_argument("hyperparameters must be an object");
  }
  TL_TRY(hyper<int64_t>(hp, "n_epochs", &r.n_epochs, d, 1, 50));
  TL_TRY(hyper<int64_t>(hp, "batch_size", &r.batch_size, d, 1, 256));
  TL_TRY(hyper<double>(hp, "learning_rate_multiplier", &r.learning_rate_multiplier, d, 1e-6, 100));
  TL_TRY(hyper<double>(hp, "beta", &r.beta, d, 1e-6, 100));
  return r;
}

}  // namespace

struct ApiServer::Impl {
  JobService& svc;
  ApiOptions opts;
  httplib::Server http;

  Impl(JobService& s, ApiOptions o) : svc(s), opts(o) {}

  Result<Tenant> auth(const httplib::Request& req) {
    const std::string h = req.get_header_value("Authorization");
    if (h.empty()) return unauthenticated("missing Authorization header: send 'Authorization: Bearer <API key>'");
    if (h.rfind("Bearer ", 0) != 0) return unauthenticated("Authorization header must be 'Bearer <API key>'");
    auto t = svc.registry().tenant_by_api_key(h.substr(7));
    if (!t.is_ok() && t.status().code() == StatusCode::kUnauthenticated)
      return unauthenticated("incorrect API key provided");
    return t;
  }

  Result<json> json_body(const httplib::Request& req, ErrorDetail* d) {
    if (req.body.size() > opts.max_json_bytes) {
      *d = {"", "request_too_large"};
      return resource_exhausted("request body is {} bytes; the limit for JSON bodies is {}", req.body.size(), opts.max_json_bytes);
    }
    if (req.body.empty()) return json::object();
    json b = json::parse(req.body, nullptr, false);
    if (b.is_discarded()) {
      // Re-parse with exceptions only to get the byte position for the message.
      std::string where;
      try {
        json ignored = json::parse(req.body);
        (void)ignored;
      } catch (const json::parse_error& e) {
        where = fmt::format(" at byte {}", e.byte);
      }
      return invalid_argument("request body is not valid JSON{}", where);
    }
    return b;
  }

  // Wraps a handler: auth first, then the body; a non-ok Status becomes an error object.
  template <typename F>
  httplib::Server::Handler authed(F f) {
    return [this, f](const httplib::Request& req, httplib::Response& res) {
      auto t = auth(req);
      if (!t.is_ok()) return send_error(res, t.status());
      ErrorDetail d;
      Status st = f(*t, req, res, &d);
      if (!st.is_ok()) send_error(res, st, d);
    };
  }

  void routes() {
    http.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      json body = {{"status", "ok"}};
      if (MlflowMirror* m = svc.mlflow()) body["mlflow"] = {{"requests", m->requests()}, {"failures", m->failures()}};
      send_json(res, 200, body);
    });

    http.Post("/v1/files", authed([this](const Tenant& t, const httplib::Request& req, httplib::Response& res, ErrorDetail* d) -> Status {
      if (!req.is_multipart_form_data()) {
        *d = {"file", "invalid_request"};
        return invalid_argument("POST /v1/files expects multipart/form-data with 'file' and 'purpose'");
      }
      if (!req.has_file("file")) {
        *d = {"file", "missing_required_parameter"};
        return invalid_argument("missing required parameter 'file'");
      }
      if (!req.has_file("purpose")) {
        *d = {"purpose", "missing_required_parameter"};
        return invalid_argument("missing required parameter 'purpose'");
      }
      auto file = req.get_file_value("file");
      auto purpose = req.get_file_value("purpose").content;
      TL_ASSIGN_OR_RETURN(auto rec, svc.upload_file(t, file.filename.empty() ? "upload.jsonl" : file.filename, purpose, file.content, d));
      send_json(res, 200, file_json(rec));
      return Status::ok();
    }));
    http.Get("/v1/files", authed([this](const Tenant& t, const httplib::Request&, httplib::Response& res, ErrorDetail*) -> Status {
      TL_ASSIGN_OR_RETURN(auto files, svc.registry().files(t.id));
      json data = json::array();
      for (const auto& f : files) data.push_back(file_json(f));
      send_json(res, 200, {{"object", "list"}, {"data", data}, {"has_more", false}});
      return Status::ok();
    }));
    http.Get(R"(/v1/files/([^/]+))", authed([this](const Tenant& t, const httplib::Request& req, httplib::Response& res, ErrorDetail*) -> Status {
      TL_ASSIGN_OR_RETURN(auto f, svc.registry().file(t.id, req.matches[1]));
      send_json(res, 200, file_json(f));
      return Status::ok();
    }));

    http.Post("/v1/fine_tuning/jobs", authed([this](const Tenant& t, const httplib::Request& req, httplib::Response& res, ErrorDetail* d) -> Status {
      TL_ASSIGN_OR_RETURN(json body, json_body(req, d));
      TL_ASSIGN_OR_RETURN(JobRequest jr, parse_job_request(body, d));
      TL_ASSIGN_OR_RETURN(JobRecord j, svc.submit(t, jr, d));
      send_json(res, 200, job_json(j));
      return Status::ok();
    }));
    http.Get("/v1/fine_tuning/jobs", authed([this](const Tenant& t, const httplib::Request& req, httplib::Response& res, ErrorDetail* d) -> Status {
      auto page = page_of(req);
      if (!page.is_ok()) *d = {"limit", "invalid_value"};
      TL_TRY(page);
      TL_ASSIGN_OR_RETURN(auto jobs, svc.registry().jobs(t.id, *page));
      bool more = static_cast<int64_t>(jobs.size()) > page->limit;
      if (more) jobs.pop_back();
      json data = json::array();
      for (const auto& j : jobs) data.push_back(job_json(j));
      send_json(res, 200, {{"object", "list"}, {"data", data}, {"has_more", more}});
      return Status::ok();
    }));
    http.Get(R"(/v1/fine_tuning/jobs/([^/]+))", authed([this](const Tenant& t, const httplib::Request& req, httplib::Response& res, ErrorDetail*) -> Status {
      TL_ASSIGN_OR_RETURN(JobRecord j, svc.registry().job(t.id, req.matches[1]));
      send_json(res, 200, job_json(j));
      return Status::ok();
    }));
    http.Post(R"(/v1/fine_tuning/jobs/([^/]+)/cancel)", authed([this](const Tenant& t, const httplib::Request& req, httplib::Response& res, ErrorDetail*) -> Status {
      TL_ASSIGN_OR_RETURN(JobRecord j, svc.cancel(t, req.matches[1]));
      send_json(res, 200, job_json(j));
      return Status::ok();
    }));
    http.Get(R"(/v1/fine_tuning/jobs/([^/]+)/events)", authed([this](const Tenant& t, const httplib::Request& req, httplib::Response& res, ErrorDetail* d) -> Status {
      TL_ASSIGN_OR_RETURN(JobRecord j, svc.registry().job(t.id, req.matches[1]));
      auto page = page_of(req);
      if (!page.is_ok()) *d = {"limit", "invalid_value"};
      TL_TRY(page);
      TL_ASSIGN_OR_RETURN(auto events, svc.registry().events(j.id, *page));
      bool more = static_cast<int64_t>(events.size()) > page->limit;
      if (more) events.pop_back();
      json data = json::array();
      for (const auto& e : events) {
        json ev = {{"object", "fine_tuning.job.event"}, {"id", e.id},     {"created_at", e.created_at},
                   {"level", e.level},                  {"message", e.message}, {"type", e.type}};
        json dj = e.data.empty() ? json(nullptr) : json::parse(e.data, nullptr, false);
        ev["data"] = dj.is_discarded() ? json(nullptr) : dj;
        data.push_back(ev);
      }
      send_json(res, 200, {{"object", "list"}, {"data", data}, {"has_more", more}});
      return Status::ok();
    }));
    http.Get(R"(/v1/fine_tuning/jobs/([^/]+)/checkpoints)", authed([this](const Tenant& t, const httplib::Request& req, httplib::Response& res, ErrorDetail*) -> Status {
      TL_ASSIGN_OR_RETURN(JobRecord j, svc.registry().job(t.id, req.matches[1]));
      TL_ASSIGN_OR_RETURN(auto ckpts, svc.registry().checkpoints(j.id));
      json data = json::array();
      for (const auto& c : ckpts) {
        json m = json::parse(c.metrics, nullptr, false);
        data.push_back({{"object", "fine_tuning.job.checkpoint"},
                        {"id", c.id},
                        {"created_at", c.created_at},
                        {"fine_tuned_model_checkpoint", fmt::format("ft:{}:{}:ckpt-step-{}", j.model, j.id, c.step)},
                        {"step_number", c.step},
                        {"metrics", m.is_discarded() ? json::object() : m},
                        {"fine_tuning_job_id", j.id},
                        {"path", c.path}});
      }
      json body = {{"object", "list"}, {"data", data}, {"has_more", false}};
      body["first_id"] = data.empty() ? json(nullptr) : data.front()["id"];
      body["last_id"] = data.empty() ? json(nullptr) : data.back()["id"];
      send_json(res, 200, body);
      return Status::ok();
    }));
    http.Get(R"(/v1/fine_tuning/jobs/([^/]+)/metrics)", authed([this](const Tenant& t, const httplib::Request& req, httplib::Response& res, ErrorDetail*) -> Status {
      TL_ASSIGN_OR_RETURN(JobRecord j, svc.registry().job(t.id, req.matches[1]));
      TL_ASSIGN_OR_RETURN(auto run, svc.registry().run_for_job(j.id));
      std::vector<std::string> keys;
      if (req.has_param("key")) {
        keys.push_back(req.get_param_value("key"));
      } else {
        TL_ASSIGN_OR_RETURN(keys, svc.registry().metric_keys(run.id));
      }
      json metrics = json::object();
      for (const auto& k : keys) {
        TL_ASSIGN_OR_RETURN(auto hist, svc.registry().metric_history(run.id, k));
        json pts = json::array();
        for (const auto& p : hist) pts.push_back({{"step", p.step}, {"value", p.value}, {"timestamp", p.created_at}});
        metrics[k] = pts;
      }
      json params = json::object();
      for (const auto& [k, v] : run.params) params[k] = v;
      send_json(res, 200, {{"object", "run"}, {"id", run.id}, {"job_id", j.id}, {"params", params}, {"metrics", metrics}});
      return Status::ok();
    }));
    http.Get(R"(/v1/fine_tuning/jobs/([^/]+)/export)", authed([this](const Tenant& t, const httplib::Request& req, httplib::Response& res, ErrorDetail* d) -> Status {
      TL_ASSIGN_OR_RETURN(JobRecord j, svc.registry().job(t.id, req.matches[1]));
      TL_ASSIGN_OR_RETURN(JobSpec spec, parse_job_spec(j.spec_yaml, j.id + "/spec.yaml"));
      std::string format = req.has_param("format") ? req.get_param_value("format") : "";
      if (format == "axolotl") res.set_content(export_axolotl_yaml(spec), "application/yaml");
      else if (format == "unsloth") res.set_content(export_unsloth_script(spec), "text/x-python");
      else if (format == "tuneloop") res.set_content(j.spec_yaml, "application/yaml");
      else {
        *d = {"format", "invalid_value"};
        return invalid_argument("format must be axolotl, unsloth or tuneloop, got '{}'", format);
      }
      return Status::ok();
    }));

    http.Get("/v1/adapters", authed([this](const Tenant& t, const httplib::Request&, httplib::Response& res, ErrorDetail*) -> Status {
      TL_ASSIGN_OR_RETURN(auto list, svc.registry().adapters(t.id));
      json data = json::array();
      for (const auto& a : list) data.push_back(adapter_json(a));
      send_json(res, 200, {{"object", "list"}, {"data", data}, {"has_more", false}});
      return Status::ok();
    }));
    http.Get(R"(/v1/adapters/([^/]+))", authed([this](const Tenant& t, const httplib::Request& req, httplib::Response& res, ErrorDetail*) -> Status {
      TL_ASSIGN_OR_RETURN(auto a, svc.registry().adapter(t.id, req.matches[1]));
      send_json(res, 200, adapter_json(a));
      return Status::ok();
    }));
    http.Post(R"(/v1/adapters/([^/]+)/(approve|deprecate|activate))",
              authed([this](const Tenant& t, const httplib::Request& req, httplib::Response& res, ErrorDetail*) -> Status {
                const std::string id = req.matches[1], action = req.matches[2];
                Result<AdapterRecord> a = action == "approve"     ? svc.registry().approve_adapter(t.id, id)
                                          : action == "deprecate" ? svc.registry().deprecate_adapter(t.id, id)
                                                                  : svc.registry().set_active_adapter(t.id, id);
                TL_TRY(a);
                send_json(res, 200, adapter_json(*a));
                return Status::ok();
              }));
    http.Get("/v1/models", authed([this](const Tenant&, const httplib::Request&, httplib::Response& res, ErrorDetail*) -> Status {
      TL_ASSIGN_OR_RETURN(auto models, svc.registry().models());
      json data = json::array();
      for (const auto& m : models)
        data.push_back({{"object", "model"}, {"id", m.name}, {"created", m.created_at}, {"owned_by", "tuneloop"},
                        {"parameter_count", m.parameter_count}});
      send_json(res, 200, {{"object", "list"}, {"data", data}});
      return Status::ok();
    }));

    // Responses httplib makes itself (404 no route, 413 payload too large, 400 bad request) get an
    // OpenAI error body too.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      Status st = res.status == 413   ? resource_exhausted("request body is larger than this server accepts")
                  : res.status == 404 ? not_found("no route {} {}", req.method, req.path)
                                      : invalid_argument("bad request ({})", res.status);
      int status = res.status;
      send_error(res, st, {"", status == 413 ? "request_too_large" : status == 404 ? "unknown_url" : "bad_request"});
      res.status = status;
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, internal_error("internal error: {}", what));
    });
  }
};

ApiServer::ApiServer(JobService& service, ApiOptions options) : impl_(std::make_unique<Impl>(service, options)) {
  int threads = options.threads;
  impl_->http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  impl_->http.set_payload_max_length(options.max_upload_bytes);
  impl_->http.set_keep_alive_max_count(1000);
  impl_->routes();
}

ApiServer::~ApiServer() { stop(); }

Result<int> ApiServer::bind(const std::string& host, int port) {
  int bound = port == 0 ? impl_->http.bind_to_any_port(host) : (impl_->http.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) return io_error("cannot listen on {}:{} (in use, or not a local address)", host, port);
  return bound;
}

Status ApiServer::serve() {
  if (!impl_->http.listen_after_bind()) return io_error("HTTP listener stopped with an error");
  return Status::ok();
}

void ApiServer::stop() { impl_->http.stop(); }
bool ApiServer::is_running() const { return impl_->http.is_running(); }

}  // namespace tl::jobs
