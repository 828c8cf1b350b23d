// Scion touches only what it wrote (issue 35, items 3, 4, 7, 8, 10), each through the real CLI:
// folders it owns carry its marker and anything else is refused, pruning deletes only its own
// checkpoint folders, no symlink is followed inside a run, no output lands on an input or a
// run's own files, CLI values are data, resume says what it does, and messages name the thing.
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "reliability.h"
#include "scion/owned.h"

using namespace reliability;

namespace {

// The tiny graph as a file in `dir`, `steps` updates in its one stage, a checkpoint every update.
fs::path write_graph(const fs::path& dir, int steps = 1, const std::string& more_stages = "") {
  std::string g = edit(tiny_graph(), "steps = 1", "steps = " + std::to_string(steps) + "\ncheckpoint = { every = 1 }");
  std::ofstream(dir / "g.toml") << g << more_stages;
  return dir / "g.toml";
}

std::string run_args(const fs::path& graph, const fs::path& out) {
  return "run " + graph.string() + " --plain --out " + out.string();
}

const std::string kSecondStage = R"(
[[stages]]
name = "more"
steps = 2
train = ["student"]
losses = ["lm"]
checkpoint = { every = 1 }
)";

}  // namespace

// --out naming a folder of the user's: refused, nothing moved or written; an empty folder is
// adopted (its marker written), and a second fresh run moves the first one's results aside.
TEST(OwnedFiles, RunRefusesAFolderItDidNotWrite) {
  const fs::path dir = temp("owned_out");
  const fs::path g = write_graph(dir);
  fs::create_directories(dir / "mine" / "sub");
  std::ofstream(dir / "mine" / "notes.txt") << "mine\n";
  Result r = sh(run_args(g, dir / "mine"));
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("cannot be a run directory: it is a folder Scion did not write"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("hint: name a new or empty folder"), std::string::npos) << r.out;
  EXPECT_EQ(listing(dir / "mine"), (std::vector<std::string>{"notes.txt", "sub"}));
  std::ofstream(dir / "a-file") << "x\n";
  r = sh(run_args(g, dir / "a-file"));
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("it is not a folder"), std::string::npos) << r.out;

  fs::create_directories(dir / "empty");
  r = sh(run_args(g, dir / "empty"));
  ASSERT_EQ(exit_code(r), 0) << r.out;
  EXPECT_TRUE(owned::has_marker(dir / "empty", "run"));
  EXPECT_TRUE(owned::has_marker(dir / "empty" / "checkpoints", "checkpoints"));
  r = sh(run_args(g, dir / "empty"));
  ASSERT_EQ(exit_code(r), 0) << r.out;
  EXPECT_NE(r.out.find("moved the earlier run's results"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

// A memory.datastore path naming a folder of the user's is refused by validate (and run) at the
// value, before anything is encoded or replaced.
TEST(OwnedFiles, ADatastorePathNamingAUsersFolderIsRefusedAtValidation) {
  const fs::path dir = temp("owned_dstore");
  fs::create_directories(dir / "mine");
  std::ofstream(dir / "mine" / "a.txt") << "mine\n";
  const std::string set = "--set 'nodes.dstore.path=\"" + (dir / "mine").string() + "\"'";
  const std::vector<std::string> cmds = {"validate graphs/knnlm_gpt.toml ",
                                         "run graphs/knnlm_gpt.toml --plain --out " + (dir / "run").string() + " "};
  for (const std::string& cmd : cmds) {
    const Result r = sh(cmd + set);
    EXPECT_EQ(exit_code(r), 3) << r.out;
    EXPECT_NE(r.out.find("--set nodes.dstore.path=\"" + (dir / "mine").string() + "\": error: node 'dstore' (memory.datastore): '" +
                         (dir / "mine").string() + "' is a folder Scion did not write as a datastore"),
              std::string::npos)
        << r.out;
  }
  EXPECT_EQ(listing(dir), (std::vector<std::string>{"mine", "mine/a.txt"}));
  fs::remove_all(dir);
}

// Runs written before markers (graph.toml and metrics.jsonl, checkpoints/latest.json) still resume
// and are still replaced by a fresh run; the marker is written then.
TEST(OwnedFiles, RunsOfAnEarlierScionWithoutMarkersStillResume) {
  const fs::path dir = temp("owned_legacy");
  const fs::path g = write_graph(dir);
  ASSERT_EQ(exit_code(sh(run_args(g, dir / "run"))), 0);
  fs::remove(dir / "run" / owned::kMarkerFile);
  fs::remove(dir / "run" / "checkpoints" / owned::kMarkerFile);
  const fs::path g2 = write_graph(dir, 1, kSecondStage);
  Result r = sh(run_args(g2, dir / "run") + " --resume");
  EXPECT_EQ(exit_code(r), 0) << r.out;
  EXPECT_NE(r.out.find("resuming"), std::string::npos) << r.out;
  EXPECT_TRUE(owned::has_marker(dir / "run", "run"));
  EXPECT_TRUE(owned::has_marker(dir / "run" / "checkpoints", "checkpoints"));
  fs::remove(dir / "run" / owned::kMarkerFile);
  r = sh(run_args(g, dir / "run"));
  EXPECT_EQ(exit_code(r), 0) << r.out;
  fs::remove_all(dir);
}

// Pruning deletes only checkpoint folders Scion wrote: what a user put in checkpoints/ stays
// (a folder named step_best used to end every resume with "error: stoll"), with a warning.
TEST(OwnedFiles, PruningLeavesWhatTheUserPutInCheckpoints) {
  const fs::path dir = temp("owned_prune");
  ASSERT_EQ(exit_code(sh(run_args(write_graph(dir), dir / "run"))), 0);
  const fs::path ck = dir / "run" / "checkpoints";
  ASSERT_TRUE(fs::is_directory(ck / "step_1"));
  fs::create_directories(ck / "step_best");
  std::ofstream(ck / "step_best" / "best.safetensors") << "mine";
  fs::create_directories(ck / "step_0");  // a checkpoint's name, but not a checkpoint's files
  std::ofstream(ck / "step_0" / "notes.txt") << "mine";
  std::ofstream(ck / "notes.txt") << "mine";
  fs::create_directories(ck / "step_99999999999999999999999");
  const Result r = sh(run_args(write_graph(dir, 1, kSecondStage), dir / "run") + " --resume");
  EXPECT_EQ(exit_code(r), 0) << r.out;
  EXPECT_EQ(r.out.find("stoll"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("warning: " + (ck / "step_best").string() + " is not a checkpoint Scion wrote; it is left alone"),
            std::string::npos)
      << r.out;
  for (const char* kept : {"step_best/best.safetensors", "step_0/notes.txt", "notes.txt", "step_99999999999999999999999"})
    EXPECT_TRUE(fs::exists(ck / kept)) << kept;
  EXPECT_FALSE(fs::exists(ck / "step_1"));  // Scion's own older checkpoint is pruned
  EXPECT_TRUE(fs::exists(ck / "step_3"));
  EXPECT_TRUE(fs::exists(ck / "step_2"));
  fs::remove_all(dir);
}

// A symlink planted at <run>/.lock or <run>/metrics.jsonl is never followed: the file it points
// to keeps its contents.
TEST(OwnedFiles, NoSymlinkIsFollowedInsideARun) {
  const fs::path dir = temp("owned_link");
  const fs::path g = write_graph(dir);
  ASSERT_EQ(exit_code(sh(run_args(g, dir / "run"))), 0);
  std::ofstream(dir / "precious.txt") << "precious\n";
  fs::remove(dir / "run" / ".lock");
  fs::create_symlink(dir / "precious.txt", dir / "run" / ".lock");
  Result r = sh(run_args(g, dir / "run") + " --resume");
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find(".lock': it is a symlink, which Scion does not follow"), std::string::npos) << r.out;
  EXPECT_EQ(slurp(dir / "precious.txt"), "precious\n");
  fs::remove(dir / "run" / ".lock");
  fs::remove(dir / "run" / "metrics.jsonl");
  fs::create_symlink(dir / "precious.txt", dir / "run" / "metrics.jsonl");
  r = sh(run_args(g, dir / "run") + " --resume");
  EXPECT_EQ(exit_code(r), 0) << r.out;
  EXPECT_EQ(slurp(dir / "precious.txt"), "precious\n");
  fs::remove_all(dir);
}

// Outputs never land on inputs: the corpus, a run's own files, a device node or a FIFO.
TEST(OwnedFiles, OutputsNeverReplaceInputsOrARunsFiles) {
  const fs::path dir = temp("owned_outputs");
  ASSERT_EQ(exit_code(sh(run_args(write_graph(dir), dir / "run"))), 0);
  std::ofstream(dir / "in.txt") << slurp(news("valid.txt"));
  const std::string corpus = slurp(dir / "in.txt");
  fs::create_symlink(dir / "in.txt", dir / "alias.txt");
  for (const char* out : {"in.txt", "alias.txt"}) {
    const Result r = sh("tokenize " + (dir / "in.txt").string() + " --tokenizer tokenizer.bytes --out " + (dir / out).string());
    EXPECT_EQ(exit_code(r), 1) << r.out;
    EXPECT_NE(r.out.find("is the input '" + (dir / "in.txt").string() + "' (the same file)"), std::string::npos) << r.out;
  }
  EXPECT_TRUE(slurp(dir / "in.txt") == corpus) << "the corpus was replaced";
  const std::string latest = (dir / "run" / "checkpoints" / "latest.json").string();
  const std::string state = (dir / "run" / "checkpoints" / "step_1" / "state.json").string();
  const std::string weights = (dir / "run" / "student.safetensors").string();
  for (const std::string& own : {latest, state, weights, latest + "@legacy", weights + "@legacy"}) {
    SCOPED_TRACE(own);
    if (own.size() > 7 && own.compare(own.size() - 7, 7, "@legacy") == 0) {
      // A run of an earlier Scion, without markers: recognised by its layout.
      fs::remove(dir / "run" / owned::kMarkerFile);
      fs::remove(dir / "run" / "checkpoints" / owned::kMarkerFile);
      const std::string file = own.substr(0, own.size() - 7);
      const Result r = sh("tokenize " + (dir / "in.txt").string() + " --tokenizer tokenizer.bytes --out " + file);
      EXPECT_EQ(exit_code(r), 1) << r.out;
      EXPECT_NE(r.out.find("a folder Scion wrote"), std::string::npos) << r.out;
      continue;
    }
    const std::string before = slurp(own);
    Result r = sh("tokenize " + (dir / "in.txt").string() + " --tokenizer tokenizer.bytes --out " + own);
    EXPECT_EQ(exit_code(r), 1) << r.out;
    EXPECT_NE(r.out.find("a folder Scion wrote"), std::string::npos) << r.out;
    r = sh("report " + (dir / "run").string() + " --out " + own);
    EXPECT_EQ(exit_code(r), 1) << r.out;
    EXPECT_NE(r.out.find("a folder Scion wrote"), std::string::npos) << r.out;
    EXPECT_TRUE(slurp(own) == before) << own << " was replaced";
  }
  // A node that is not a regular file is never replaced by one (a device where the test can
  // make one, as root; a FIFO always).
  std::vector<std::string> nodes;
  if (::mkfifo((dir / "fifo").c_str(), 0644) == 0) nodes.push_back((dir / "fifo").string());
  if (::mknod((dir / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) nodes.push_back((dir / "null").string());
  ASSERT_FALSE(nodes.empty());
  for (const std::string& node : nodes) {
    Result r = sh("tokenize " + (dir / "in.txt").string() + " --tokenizer tokenizer.bytes --out " + node);
    EXPECT_EQ(exit_code(r), 1) << r.out;
    EXPECT_NE(r.out.find("which Scion does not replace"), std::string::npos) << r.out;
    r = sh("report " + (dir / "run").string() + " --out " + node);
    EXPECT_EQ(exit_code(r), 1) << r.out;
    EXPECT_FALSE(fs::is_regular_file(node)) << node;
  }
  fs::remove_all(dir);
}

// --checkpoint is a path, never TOML: backslashes, quotes and escapes are taken as they are.
TEST(OwnedFiles, EvalCheckpointPathsAreData) {
  const fs::path dir = temp("owned_eval");
  const fs::path g = write_graph(dir);
  ASSERT_EQ(exit_code(sh(run_args(g, dir / "run"))), 0);
  for (const std::string name : {"\\u0041.safetensors", "q\"b.safetensors", "back\\slash.safetensors"}) {
    SCOPED_TRACE(name);
    fs::copy_file(dir / "run" / "student.safetensors", dir / name);
    std::string quoted = "'" + (dir / name).string() + "'";
    const Result r = sh("eval " + g.string() + " --checkpoint " + quoted);
    EXPECT_EQ(exit_code(r), 0) << r.out;
    EXPECT_NE(r.out.find("\"ppl\""), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(dir / "A.safetensors"));
  }
  fs::remove_all(dir);
}

// A finished run resumed with more steps in the stage that ended last trains on to the new
// total; more steps in a stage before it are refused, saying why and what to do; resumed as it
// is, it says there is nothing left to train.
TEST(OwnedFiles, ResumingAFinishedRunSaysWhatItDoes) {
  const fs::path dir = temp("owned_resume");
  ASSERT_EQ(exit_code(sh(run_args(write_graph(dir, 2), dir / "run"))), 0);
  Result r = sh(run_args(write_graph(dir, 2), dir / "run") + " --resume");
  EXPECT_EQ(exit_code(r), 0) << r.out;
  EXPECT_NE(r.out.find("the run has finished (step 2, every stage done): nothing left to train"), std::string::npos) << r.out;
  r = sh(run_args(write_graph(dir, 4), dir / "run") + " --resume");
  EXPECT_EQ(exit_code(r), 0) << r.out;
  EXPECT_NE(r.out.find("stage 'train' had ended after 2 updates; this graph gives it 4, so it trains on to that total"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("[train] step 4/4"), std::string::npos) << r.out;
  std::vector<int64_t> steps;
  for (const Json& m : metrics(dir / "run"))
    if (m.contains("lr")) steps.push_back(json_int(m.at("step")));
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4}));
  // Two stages done: the second one given more updates trains on; the first one cannot.
  ASSERT_EQ(exit_code(sh(run_args(write_graph(dir, 4, kSecondStage), dir / "run") + " --resume")), 0);
  r = sh(run_args(write_graph(dir, 4, edit(kSecondStage, "steps = 2", "steps = 3")), dir / "run") + " --resume");
  EXPECT_EQ(exit_code(r), 0) << r.out;
  EXPECT_NE(r.out.find("stage 'more' had ended after 2 updates; this graph gives it 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[more] step 3/3"), std::string::npos) << r.out;
  const auto before = listing(dir / "run" / "checkpoints");
  r = sh(run_args(write_graph(dir, 5, edit(kSecondStage, "steps = 2", "steps = 3")), dir / "run") + " --resume");
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("resume: stage 'train' ended after 4 updates"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("but this graph gives it 5: a stage is trained on only when it is the last one that ended"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("hint: train more in a new [[stages]] entry"), std::string::npos) << r.out;
  EXPECT_EQ(listing(dir / "run" / "checkpoints"), before);
  // A checkpoint written before stage_updates were recorded says which stage made how many only
  // when one stage has ended; with two it refuses to guess.
  const fs::path ck = dir / "run" / "checkpoints";
  const fs::path state = ck / json_string(json_parse(slurp(ck / "latest.json")).at("checkpoint")) / "state.json";
  Json st = json_parse(slurp(state));
  st.erase("stage_updates");
  std::ofstream(state) << json_dump(st);
  r = sh(run_args(write_graph(dir, 4, edit(kSecondStage, "steps = 2", "steps = 4")), dir / "run") + " --resume");
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("the checkpoint does not record which stage made how many"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

// Messages that name the thing: plugin folders, generate's options, report's inputs, a FIFO.
TEST(OwnedFiles, MessagesSayWhatIsWrongAndWhere) {
  const fs::path dir = temp("owned_msgs");
  fs::create_directories(dir / "plugins");
  std::ofstream(dir / "plugins" / "libempty.so");
  std::ofstream(dir / "plugins" / "libtext.so") << "not a library\n";
  Result r = sh("plugins --plugin-dir " + (dir / "plugins").string());
  EXPECT_EQ(exit_code(r), 0) << r.out;
  EXPECT_EQ(r.out.find("Bad file descriptor"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("libempty.so' is empty (0 bytes), not a shared library"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("libtext.so' is not a shared library (14 bytes without an ELF header"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model.gpt"), std::string::npos) << r.out;  // the other plugins still load

  r = sh("plugins --plugin-dir " + (dir / "no-such").string());
  EXPECT_EQ(exit_code(r), 2) << r.out;
  EXPECT_NE(r.out.find("--plugin-dir '" + (dir / "no-such").string() + "' is missing"), std::string::npos) << r.out;

  for (const char* bad : {"--max-tokens -1", "--max-tokens 0", "--temperature -1", "--top-k -3"}) {
    r = sh(std::string("generate --checkpoint x.safetensors --prompt hi ") + bad);
    EXPECT_EQ(exit_code(r), 2) << bad << ": " << r.out;
  }
  EXPECT_NE(sh("generate --checkpoint x --prompt hi --max-tokens -1").out.find("--max-tokens -1: generate at least 1 token"),
            std::string::npos);

  fs::create_directories(dir / "garbage");
  std::ofstream(dir / "garbage" / "metrics.jsonl") << "not json\n[1, 2]\n";
  r = sh("report " + (dir / "garbage").string() + " --out " + (dir / "r.html").string());
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("metrics.jsonl' has no metric line (2 lines, none a JSON object with a \"step\")"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("wrote"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir / "r.html"));

  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0644), 0);
  r = sh("generate --checkpoint " + (dir / "fifo").string() + " --prompt hi", "timeout 60");
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("fifo' is a FIFO, not a regular file"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

// A FIFO planted at metrics.jsonl is refused on resume instead of blocking the read that
// precedes its rewrite; a symlink planted at earlier/ is refused before any result moves.
TEST(OwnedFiles, PlantedFifoMetricsAndSymlinkedEarlierAreRefused) {
  const fs::path dir = temp("owned_planted");
  const fs::path g = write_graph(dir);
  ASSERT_EQ(exit_code(sh(run_args(g, dir / "run"))), 0);
  fs::remove(dir / "run" / "metrics.jsonl");
  ASSERT_EQ(::mkfifo((dir / "run" / "metrics.jsonl").c_str(), 0644), 0);
  Result r = sh(run_args(g, dir / "run") + " --resume", "timeout 60");
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("its metrics.jsonl is a FIFO, not a regular file (hint: remove it)"), std::string::npos) << r.out;
  fs::remove(dir / "run" / "metrics.jsonl");

  fs::create_directories(dir / "elsewhere");
  fs::create_symlink(dir / "elsewhere", dir / "run" / "earlier");
  const auto before = fs::directory_iterator(dir / "run");
  size_t entries = std::distance(fs::begin(before), fs::end(before));
  r = sh(run_args(g, dir / "run"));
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("earlier': it is a symlink, which Scion does not follow"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::is_empty(dir / "elsewhere"));
  const auto after = fs::directory_iterator(dir / "run");
  EXPECT_EQ(size_t(std::distance(fs::begin(after), fs::end(after))), entries) << "a result moved";
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoints"));
  fs::remove_all(dir);
}
