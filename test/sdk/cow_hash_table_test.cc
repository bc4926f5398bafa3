// The copy-on-write hash table behind heap keyed state: a map and a set against std containers
// under random changes, snapshots that keep their moment through changes, growth and removals,
// copies of changed entries only, and every value freed exactly once however snapshots and the
// table end.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "weir/detail/cow_hash_table.h"

namespace {

using weir::detail::CowHashMap;
using weir::detail::CowHashSet;

// A value that counts its live instances (on any thread: snapshots free values where released).
struct Counted {
  static inline std::atomic<int> live = 0;
  Counted() { ++live; }
  explicit Counted(long v) : value(v) { ++live; }
  Counted(const Counted& o) : value(o.value) { ++live; }
  Counted& operator=(const Counted&) = default;
  ~Counted() { --live; }
  long value = 0;
};

// Every key of one key group shares its hash's low bits; this hash is worse: all low 16 bits equal.
struct LowBitsEqualHash {
  std::size_t operator()(long k) const { return static_cast<std::size_t>(k) << 16; }
};

using Map = CowHashMap<long, Counted, LowBitsEqualHash>;

std::map<long, long> contents(const Map::Snapshot& s) {
  std::map<long, long> out;
  for (const auto& [k, v] : s)
    CHECK(out.emplace(k, v.value).second);
  CHECK(out.size() == s.size());
  return out;
}

std::map<long, long> contents(const Map& m) {
  std::map<long, long> out;
  for (const auto& [k, v] : m)
    CHECK(out.emplace(k, v.value).second);
  CHECK(out.size() == m.size());
  return out;
}

// One random change to both the table and the reference.
void change(Map& m, std::map<long, long>& ref, std::mt19937_64& rng, long key_space) {
  const long k = static_cast<long>(rng() % static_cast<std::uint64_t>(key_space));
  switch (rng() % 4) {
    case 0:
      CHECK(m.erase(k) == (ref.erase(k) == 1));
      break;
    case 1: {
      Counted* v = nullptr;
      if (auto* e = m.findMutable(k)) v = &e->second;
      CHECK((v != nullptr) == (ref.count(k) == 1));
      if (v != nullptr) ref[k] = ++v->value;
      break;
    }
    default: {
      auto [e, made] = m.tryEmplace(k, k * 10);
      CHECK(made == (ref.count(k) == 0));
      if (!made) ++e->second.value;
      ref[k] = e->second.value;
    }
  }
}

}  // namespace

TEST_CASE("cow hash table: a map behaves as std::map under random changes") {
  {
    Map m;
    std::map<long, long> ref;
    std::mt19937_64 rng(7);
    for (int i = 0; i < 200'000; ++i) {
      change(m, ref, rng, i < 100'000 ? 5'000 : 300);  // grows, then mostly removes
      if (i % 20'000 == 0) CHECK(contents(m) == ref);
    }
    CHECK(contents(m) == ref);
    for (const auto& [k, v] : ref) {
      const auto* e = m.find(k);
      REQUIRE(e != nullptr);
      CHECK(e->second.value == v);
    }
    CHECK(m.find(-1) == nullptr);
  }
  CHECK(Counted::live == 0);
}

TEST_CASE("cow hash table: snapshots keep their moment through changes, growth and removals") {
  {
    std::optional<Map> m(std::in_place);
    std::map<long, long> ref;
    std::mt19937_64 rng(11);
    struct Held {
      Map::Snapshot snap;
      std::map<long, long> expected;
    };
    std::vector<Held> held;
    for (int round = 0; round < 40; ++round) {
      const long key_space = round % 3 == 0 ? 50 : 3'000;
      for (int i = 0; i < 2'000; ++i)
        change(*m, ref, rng, key_space);
      held.push_back({m->freeze(), ref});
      // Release some, oldest or newest first, keeping up to three at once.
      if (held.size() > 3) held.erase(rng() % 2 == 0 ? held.begin() : held.end() - 1);
      for (const Held& h : held)
        CHECK(contents(h.snap) == h.expected);
    }
    CHECK(contents(*m) == ref);
    // The table goes before its snapshots: they stay readable.
    m.reset();
    for (const Held& h : held)
      CHECK(contents(h.snap) == h.expected);
    held.clear();
  }
  CHECK(Counted::live == 0);
}

TEST_CASE("cow hash table: only the entries changed while a snapshot is held are copied") {
  Map m;
  for (long k = 0; k < 1'000; ++k)
    m.tryEmplace(k, k);
  const Counted* a = &m.find(1)->second;
  const Counted* b = &m.find(2)->second;
  const int before = Counted::live;

  m.freeze();  // released at once: nothing is copied
  m.findMutable(1)->second.value = 100;
  CHECK(&m.find(1)->second == a);

  auto snap = m.freeze();
  m.findMutable(1)->second.value = 101;
  const Counted* a2 = &m.find(1)->second;
  CHECK(a2 != a);
  CHECK(Counted::live == before + 1);  // one copy, not the table
  m.findMutable(1)->second.value = 102;  // once per snapshot
  CHECK(&m.find(1)->second == a2);
  CHECK(&m.find(2)->second == b);  // untouched entries are shared
  for (long k = 1'000; k < 5'000; ++k)  // growing relinks, copies nothing
    m.tryEmplace(k, k);
  CHECK(Counted::live == before + 1 + 4'000);
  CHECK(&m.find(2)->second == b);
  CHECK(m.erase(2));
  CHECK(Counted::live == before + 1 + 4'000);  // the snapshot still sees 2
  CHECK(contents(snap).at(1) == 100);
  CHECK(contents(snap).at(2) == 2);
  CHECK(contents(snap).size() == 1'000);

  snap = Map::Snapshot();  // released: the replaced and removed entries go
  CHECK(Counted::live == before + 4'000 - 1);
  m.findMutable(3)->second.value = 7;  // changed in place again
  CHECK(m.find(3)->second.value == 7);
  CHECK(Counted::live == before + 4'000 - 1);
}

TEST_CASE("cow hash table: a snapshot read on another thread while the table changes") {
  {
    Map m;
    std::map<long, long> ref;
    for (long k = 0; k < 20'000; ++k) {
      m.tryEmplace(k, k);
      ref[k] = k;
    }
    std::mt19937_64 rng(3);
    for (int round = 0; round < 5; ++round) {
      std::optional<Map::Snapshot> snap = m.freeze();
      const std::map<long, long> expected = ref;
      std::map<long, long> seen;
      std::thread reader([&] {
        seen = contents(*snap);
        snap.reset();  // released on the reading thread, as the checkpoint writer does
      });
      for (int i = 0; i < 50'000; ++i)
        change(m, ref, rng, 40'000);
      reader.join();
      CHECK(seen == expected);
      CHECK(contents(m) == ref);
    }
  }
  CHECK(Counted::live == 0);
}

TEST_CASE("cow hash table: a set") {
  CowHashSet<std::string, std::hash<std::string>> s;
  std::set<std::string> ref;
  for (int i = 0; i < 500; ++i) {
    const std::string k = "k" + std::to_string(i % 97);
    CHECK(s.tryEmplace(k).second == ref.insert(k).second);
  }
  auto snap = s.freeze();
  CHECK(s.erase("k1"));
  CHECK(!s.erase("k1"));
  CHECK(s.find("k1") == nullptr);
  CHECK(s.find("k2") != nullptr);
  std::set<std::string> frozen(snap.begin(), snap.end());
  CHECK(frozen == ref);
  CHECK(s.size() == ref.size() - 1);
}
