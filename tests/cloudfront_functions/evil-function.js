function handler(event) { return new Function('return 1')(); }
