/* nbody: a small gravitational simulation, the benchmark of
 * examples/tune_flags.lua. It advances five bodies by a fixed number of
 * steps and prints the system's energy before and after with fifteen decimals:
 * a compiler flag that changes the arithmetic (say -ffast-math) changes
 * that output, and the flow rejects it.
 *
 *   cc -O2 nbody.c -o nbody -lm && ./nbody 200000 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { BODIES = 5 };

typedef struct body {
  double x, y, z, vx, vy, vz, mass;
} body;

static const double PI = 3.141592653589793;
static const double DAYS_PER_YEAR = 365.24;

static double energy(const body *b) {
  double e = 0.0;
  for (int i = 0; i < BODIES; i++) {
    e += 0.5 * b[i].mass * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
    for (int j = i + 1; j < BODIES; j++) {
      double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
      e -= b[i].mass * b[j].mass / sqrt(dx * dx + dy * dy + dz * dz);
    }
  }
  return e;
}

static void advance(body *b, double dt) {
  for (int i = 0; i < BODIES; i++) {
    for (int j = i + 1; j < BODIES; j++) {
      double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
      double d2 = dx * dx + dy * dy + dz * dz;
      double mag = dt / (d2 * sqrt(d2));
      b[i].vx -= dx * b[j].mass * mag;
      b[i].vy -= dy * b[j].mass * mag;
      b[i].vz -= dz * b[j].mass * mag;
      b[j].vx += dx * b[i].mass * mag;
      b[j].vy += dy * b[i].mass * mag;
      b[j].vz += dz * b[i].mass * mag;
    }
  }
  for (int i = 0; i < BODIES; i++) {
    b[i].x += dt * b[i].vx;
    b[i].y += dt * b[i].vy;
    b[i].z += dt * b[i].vz;
  }
}

int main(int argc, char **argv) {
  long steps = argc > 1 ? atol(argv[1]) : 1000;
  const double solar = 4 * PI * PI;
  /* A sun and four outer planets; positions in AU, velocities in AU/day. */
  body b[BODIES] = {
      {0, 0, 0, 0, 0, 0, solar},
      {4.84143144246472090, -1.16032004402742839, -0.103622044471123109, 1.66007664274403694e-03 * DAYS_PER_YEAR,
       7.69901118419740425e-03 * DAYS_PER_YEAR, -6.90460016972063023e-05 * DAYS_PER_YEAR, 9.54791938424326609e-04 * solar},
      {8.34336671824457987, 4.12479856412430479, -0.403523417114321381, -2.76742510726862411e-03 * DAYS_PER_YEAR,
       4.99852801234917238e-03 * DAYS_PER_YEAR, 2.30417297573763929e-05 * DAYS_PER_YEAR, 2.85885980666130812e-04 * solar},
      {12.8943695621391310, -15.1111514016986312, -0.223307578892655734, 2.96460137564761618e-03 * DAYS_PER_YEAR,
       2.37847173959480950e-03 * DAYS_PER_YEAR, -2.96589568540237556e-05 * DAYS_PER_YEAR, 4.36624404335156298e-05 * solar},
      {15.3796971148509165, -25.9193146099879641, 0.179258772950371181, 2.68067772490389322e-03 * DAYS_PER_YEAR,
       1.62824170038242295e-03 * DAYS_PER_YEAR, -9.51592254519715870e-05 * DAYS_PER_YEAR, 5.15138902046611451e-05 * solar},
  };
  /* Give the sun the momentum that keeps the centre of mass still. */
  double px = 0, py = 0, pz = 0;
  for (int i = 0; i < BODIES; i++) {
    px += b[i].vx * b[i].mass;
    py += b[i].vy * b[i].mass;
    pz += b[i].vz * b[i].mass;
  }
  b[0].vx = -px / solar;
  b[0].vy = -py / solar;
  b[0].vz = -pz / solar;

  printf("%.15f\n", energy(b));
  for (long s = 0; s < steps; s++) advance(b, 0.01);
  printf("%.15f\n", energy(b));
  return 0;
}
